"""`python -m companion`: the command line, for environments without the `companion` script on PATH."""

from companion.cli import main

if __name__ == "__main__":
    main()
