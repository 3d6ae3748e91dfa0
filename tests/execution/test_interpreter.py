"""The code interpreter: the data-science runtime, rich results, and files in and out.

Every test runs in both sandbox modes, against the real packages of `make runtime`, with one
sandbox of each kind (plain, and with the packages preloaded).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from companion.config import load_settings
from companion.execution import ExecutionRequest, ExecutionResult, SyncExecutor
from tests.execution.conftest import SANDBOX_MODES, assert_healthy, sandbox_settings

pytestmark = pytest.mark.sandbox

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=SANDBOX_MODES)
def interpreter(request: pytest.FixtureRequest) -> Iterator[SyncExecutor]:
    """A plain sandbox and one with the packages preloaded."""
    settings = sandbox_settings(
        request.param,
        execution_pool_size=1,
        execution_data_pool_size=1,
        execution_max_returned_files=8,
        execution_max_returned_bytes=256 * 1024,
    )
    with SyncExecutor(load_settings(**settings)) as executor:
        assert executor.executor.data_pool_stats() is not None, "the preloaded pool did not start"
        yield executor


def run(sandbox: SyncExecutor, code: str, **fields: object) -> ExecutionResult:
    fields.setdefault("language", "python")
    return sandbox.run(ExecutionRequest.model_validate({"code": code, **fields}))


def _data_runs(sandbox: SyncExecutor) -> int:
    stats = sandbox.executor.data_pool_stats()
    assert stats is not None
    return stats.runs


def test_every_package_of_the_runtime_imports_and_works(interpreter: SyncExecutor) -> None:
    code = (
        "import numpy as np, pandas as pd, scipy.stats, sklearn.linear_model\n"
        "import matplotlib.pyplot as plt\n"
        "frame = pd.DataFrame({'x': np.arange(100.0), 'g': np.arange(100) % 4})\n"
        "frame['y'] = 3 * frame.x + 1\n"
        "model = sklearn.linear_model.LinearRegression().fit(frame[['x']], frame.y)\n"
        "print(round(float(model.coef_[0]), 6), frame.groupby('g').x.sum().tolist())\n"
        "print(round(float(scipy.stats.pearsonr(frame.x, frame.y)[0]), 6))\n"
        "print(plt.get_backend())"
    )
    before = _data_runs(interpreter)
    result = run(interpreter, code)
    assert result.status == "ok", result
    assert result.stdout == "3.0 [1200.0, 1225.0, 1250.0, 1275.0]\n1.0\nAgg\n"
    assert _data_runs(interpreter) == before + 1, "an importing run went to the plain pool"


def test_a_standard_library_run_stays_on_the_plain_sandboxes(interpreter: SyncExecutor) -> None:
    before = _data_runs(interpreter)
    result = run(interpreter, "import json\nprint(json.dumps([1]))")
    assert result.stdout == "[1]\n"
    assert _data_runs(interpreter) == before


def test_a_package_imported_indirectly_still_works_on_a_plain_sandbox(
    interpreter: SyncExecutor,
) -> None:
    before = _data_runs(interpreter)
    result = run(interpreter, "import importlib\nprint(importlib.import_module('numpy').ones(2))")
    assert result.stdout == "[1. 1.]\n", result
    assert _data_runs(interpreter) == before  # slower (it imports numpy itself), not broken


def test_the_last_expression_is_the_value_like_a_notebook_cell(interpreter: SyncExecutor) -> None:
    result = run(interpreter, "x = 20\nx * 2 + 2")
    assert [(r.kind, r.mime_type, r.data) for r in result.results] == [
        ("value", "text/plain", "42")
    ]
    assert result.stdout == ""
    for silent in ("x = 1", "print('p')", "None", "def f():\n    return 1"):
        assert run(interpreter, silent).results == [], silent


def test_a_dataframe_comes_back_as_text_and_html(interpreter: SyncExecutor) -> None:
    result = run(interpreter, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    assert result.status == "ok", result
    by_type = {r.mime_type: r for r in result.results}
    assert set(by_type) == {"text/plain", "text/html"}
    assert {r.output for r in result.results} == {0}  # two representations of one output
    assert "<table" in by_type["text/html"].data
    assert "<td>x</td>" in by_type["text/html"].data
    assert by_type["text/plain"].data.split() == ["a", "b", "0", "1", "x", "1", "2", "y"]


def test_display_calls_come_back_in_order_before_the_value(interpreter: SyncExecutor) -> None:
    code = "display('first')\ndisplay(2, [3])\n'last'"
    result = run(interpreter, code)
    shown = [(r.kind, r.output, r.data) for r in result.results]
    assert shown == [
        ("display", 0, "'first'"),
        ("display", 1, "2"),
        ("display", 2, "[3]"),
        ("value", 3, "'last'"),
    ]


def test_objects_offering_representations_are_shown_in_each(interpreter: SyncExecutor) -> None:
    code = (
        "class Card:\n"
        "    def _repr_markdown_(self): return '**bold**'\n"
        "    def _repr_json_(self): return {'a': 1}\n"
        "    def _repr_html_(self): raise ValueError('broken')\n"
        "    def __repr__(self): return 'Card()'\n"
        "Card()"
    )
    result = run(interpreter, code)
    assert {r.mime_type: r.data for r in result.results} == {
        "text/markdown": "**bold**",
        "application/json": '{"a": 1}',
        "text/plain": "Card()",
    }


def test_open_figures_come_back_as_png_images(interpreter: SyncExecutor) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [3, 1, 2])\nplt.figure()\nplt.bar(['a', 'b'], [1, 2])\n"
        "plt.title('second')"
    )
    result = run(interpreter, code)
    assert result.status == "ok", result
    figures = [r for r in result.results if r.kind == "figure"]
    assert [r.mime_type for r in figures] == ["image/png", "image/png"]
    for figure in figures:
        assert figure.encoding == "base64"
        assert base64.b64decode(figure.data).startswith(_PNG_SIGNATURE)
    value = [r for r in result.results if r.kind == "value"]
    assert value
    assert value[0].data.startswith("Text(")


def test_figures_come_back_as_svg_on_request(interpreter: SyncExecutor) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.gcf()"
    result = run(interpreter, code, figure_format="svg")
    assert [(r.kind, r.mime_type) for r in result.results] == [("figure", "image/svg+xml")]
    assert result.results[0].data.lstrip().startswith("<?xml")


def test_figures_do_not_leak_into_the_next_run(interpreter: SyncExecutor) -> None:
    run(interpreter, "import matplotlib.pyplot as plt\nplt.plot([1])")
    result = run(interpreter, "import matplotlib.pyplot as plt\nprint(plt.get_fignums())")
    assert result.stdout == "[]\n"
    assert result.results == []


def test_a_figure_too_large_to_render_is_reported_and_the_sandbox_survives(
    interpreter: SyncExecutor,
) -> None:
    code = (
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(2000, 2000), dpi=200)\nprint('made')"
    )
    result = run(interpreter, code)
    assert result.stdout == "made\n"
    assert "figure 1 could not be rendered" in result.stderr, result
    assert result.results == []
    assert result.status in {"ok", "memory_limit"}, result
    assert_healthy(interpreter)


def test_results_are_bounded_by_the_output_limit(interpreter: SyncExecutor) -> None:
    code = "for i in range(2000):\n    display('x' * 100)"
    result = run(interpreter, code, limits={"max_output_bytes": 16 * 1024})
    assert result.status == "ok", result
    assert result.results_truncated
    assert 0 < sum(len(r.data) for r in result.results) < 16 * 1024


def test_binary_and_nested_input_files_are_written_as_sent(interpreter: SyncExecutor) -> None:
    payload = bytes(range(256)) * 4
    files = [
        {
            "name": "data/raw.bin",
            "content": base64.b64encode(payload).decode(),
            "encoding": "base64",
        },
        {"name": "data/notes.txt", "content": "héllo"},
    ]
    code = (
        "import hashlib\n"
        "print(hashlib.sha256(open('data/raw.bin', 'rb').read()).hexdigest())\n"
        "print(open('data/notes.txt', encoding='utf-8').read())"
    )
    result = run(interpreter, code, files=files)
    import hashlib

    assert result.stdout == f"{hashlib.sha256(payload).hexdigest()}\nhéllo\n", result
    assert result.files == []  # unchanged inputs are not echoed back


def test_new_and_changed_files_come_back_and_unchanged_ones_do_not(
    interpreter: SyncExecutor,
) -> None:
    files = [{"name": "keep.txt", "content": "same"}, {"name": "edit.txt", "content": "old"}]
    code = (
        "import os, pandas as pd\n"
        "open('edit.txt', 'w').write('new')\n"
        "os.makedirs('out/deep')\n"
        "pd.DataFrame({'a': [1, 2]}).to_csv('out/table.csv', index=False)\n"
        "open('out/deep/blob.bin', 'wb').write(bytes([0, 255]))"
    )
    result = run(interpreter, code, files=files)
    assert result.status == "ok", result
    returned = {f.path: (f.mime_type, base64.b64decode(f.content_base64)) for f in result.files}
    assert returned == {
        "edit.txt": ("text/plain", b"new"),
        "out/table.csv": ("text/csv", b"a\n1\n2\n"),
        "out/deep/blob.bin": ("application/octet-stream", b"\x00\xff"),
    }
    assert {f.path: f.size_bytes for f in result.files}["out/deep/blob.bin"] == 2
    assert not result.files_truncated


def test_links_are_never_followed_out_of_the_run_directory(interpreter: SyncExecutor) -> None:
    code = (
        "import os\n"
        "os.symlink('/usr/lib/os-release', 'release')\n"
        "os.symlink('/usr', 'tree')\n"
        "os.symlink('..', 'parent')\n"
        "open('../outside.txt', 'w').write('not returned')\n"
        "open('real.txt', 'w').write('returned')"
    )
    result = run(interpreter, code)
    assert result.status == "ok", result
    assert [f.path for f in result.files] == ["real.txt"]


def test_a_run_directory_turned_into_a_link_returns_nothing_from_elsewhere(
    interpreter: SyncExecutor,
) -> None:
    code = (
        "import os\n"
        "open('mine.txt', 'w').write('x')\n"
        "os.chdir('..')\n"
        "os.rename('run', 'moved')\n"
        "os.symlink('/usr/lib', 'run')"
    )
    result = run(interpreter, code)
    assert result.status == "ok", result
    assert result.files == []
    assert "replaced" in result.stderr
    assert run(interpreter, "import os\nprint(os.listdir('..'))").stdout == "['run']\n"
    assert_healthy(interpreter)


def test_huge_and_numerous_files_are_capped_with_a_flag(interpreter: SyncExecutor) -> None:
    many = "for i in range(20):\n    open(f'f{i:02}.txt', 'w').write(str(i))"
    result = run(interpreter, many)
    assert [f.path for f in result.files] == [f"f{i:02}.txt" for i in range(8)]
    assert result.files_truncated
    huge = "open('big.bin', 'wb').write(b'x' * 300_000)\nopen('small.txt', 'w').write('s')"
    result = run(interpreter, huge)
    assert [f.path for f in result.files] == ["small.txt"]
    assert result.files_truncated
    lowered = run(interpreter, "open('a.txt', 'w').write('a')", limits={"max_returned_files": 0})
    assert lowered.files == []


def test_a_file_name_the_service_would_refuse_is_not_returned(interpreter: SyncExecutor) -> None:
    code = "open('.hidden', 'w').write('h')\nopen('ok.txt', 'w').write('o')"
    result = run(interpreter, code)
    assert [f.path for f in result.files] == ["ok.txt"]
    assert "'.hidden' not returned" in result.stderr


@pytest.mark.parametrize(
    "record",
    [
        '{"result": {"kind": "value", "output": 0, "mime_type": "bad", "data": "x"}}',
        '{"result": {"kind": "value", "output": -1, "mime_type": "text/plain", "data": "x"}}',
        '{"file": {"path": "../../etc/passwd", "size_bytes": 1, "mime_type": "text/plain", '
        '"content_base64": "eA=="}}',
        '{"file": {"path": "a.txt", "size_bytes": 99, "mime_type": "text/plain", '
        '"content_base64": "eA=="}}',
        '{"file": {"path": "a.txt", "size_bytes": 1, "mime_type": "text/plain", '
        '"content_base64": "%%%"}}',
    ],
    ids=["mime", "output", "traversal", "size", "base64"],
)
def test_a_forged_result_or_file_record_is_an_internal_error(
    interpreter: SyncExecutor, record: str
) -> None:
    result = run(interpreter, f"import os\nos.write(3, {record!r}.encode() + b'\\n')")
    assert result.status == "internal_error", result
    assert result.error is not None
    assert "malformed" in result.error.value
    assert result.files == []
    assert result.results == []


def test_javascript_returns_its_completion_value(interpreter: SyncExecutor) -> None:
    cases = {
        "1 + 1": [("text/plain", "2")],
        "'text'": [("text/plain", "text")],
        "[1, {a: true}]": [
            ("text/plain", '[1,{"a":true}]'),
            ("application/json", '[1,{"a":true}]'),
        ],
        "let x = 1": [],
        "console.log('only output')": [],
    }
    for code, expected in cases.items():
        result = run(interpreter, code, language="javascript")
        assert result.status == "ok", result
        assert [(r.mime_type, r.data) for r in result.results] == expected, code


def test_the_preloaded_packages_cannot_be_poisoned_for_later_runs(
    interpreter: SyncExecutor,
) -> None:
    poison = (
        "import ctypes, numpy as np, pandas as pd, matplotlib\n"
        "np.pi = 3\n"
        "pd.DataFrame.sum = lambda self, *a, **k: 'poisoned'\n"
        "matplotlib.rcParams['lines.linewidth'] = 99\n"
        "value = np.ones(1)\n"
        "ctypes.memset(np.array([1.0]).ctypes.data, 0, 8)\n"
        "import sys; sys.modules['json'] = None\n"
        "print('done')"
    )
    assert run(interpreter, poison).stdout == "done\n"
    for _ in range(2):  # the next children of the same zygote
        check = run(
            interpreter,
            "import json, numpy as np, pandas as pd, matplotlib\n"
            "print(np.pi, pd.DataFrame({'a': [1]}).sum().a, matplotlib.rcParams['lines.linewidth'])",
        )
        assert check.stdout == "3.141592653589793 1 1.5\n", check


def test_numpy_tricks_do_not_reach_the_host(interpreter: SyncExecutor) -> None:
    code = (
        "import numpy as np, os\n"
        "for path in ('/etc/passwd', '/proc/1/environ', '../../etc/shadow'):\n"
        "    try:\n"
        "        np.fromfile(path, dtype=np.uint8)\n"
        "        print('read', path)\n"
        "    except OSError as exc:\n"
        "        print('denied')\n"
        "try:\n"
        "    np.memmap('/usr/lib/os-release', mode='r+')\n"
        "    print('writable')\n"
        "except OSError:\n"
        "    print('read-only')"
    )
    result = run(interpreter, code)
    assert result.stdout.splitlines()[:3] == ["denied"] * 3, result
    assert result.stdout.endswith("read-only\n")
    assert_healthy(interpreter)


def test_the_cpu_a_run_reports_is_its_own_not_its_warm_up(interpreter: SyncExecutor) -> None:
    # A preloaded child spends ~0.1 s of CPU warming up before its request comes.
    quick = run(interpreter, "import numpy\nprint(1)")
    assert quick.usage.cpu_ms < 50, quick.usage
    spin = "import numpy, time\nend = time.process_time() + 0.3\nwhile time.process_time() < end:\n    pass"
    busy = run(interpreter, spin)
    assert 300 <= busy.usage.cpu_ms < 450, busy.usage


def test_a_cpu_bound_run_on_a_preloaded_sandbox_times_out_with_its_own_cpu(
    interpreter: SyncExecutor,
) -> None:
    result = run(
        interpreter,
        "import numpy\nwhile True:\n    pass",
        limits={"cpu_time_ms": 1000, "wall_time_ms": 4000},
    )
    assert result.status == "timeout", result
    # RLIMIT_CPU counts whole seconds of the process's life: the run gets at least its second.
    assert 1000 <= result.usage.cpu_ms < 2100, result.usage


def test_a_snippet_cannot_change_how_later_runs_read_the_fonts(interpreter: SyncExecutor) -> None:
    # The font files stay open across the fork; each child opens them again, so flags set on a
    # descriptor (O_DIRECT made every later unaligned read fail) stay in the run that set them.
    poison = (
        "import fcntl, os, numpy\n"
        "for fd in range(4, 64):\n"
        "    try:\n"
        "        fcntl.fcntl(fd, fcntl.F_SETFL, os.O_DIRECT)\n"
        "    except OSError:\n"
        "        pass\n"
        "print('set')"
    )
    assert run(interpreter, poison).stdout == "set\n"
    for _ in range(3):
        drawn = run(
            interpreter,
            "import matplotlib.pyplot as plt\nplt.title('Glyphs: ÀÉÎÕÜ ßçñ 0123456789')\nprint('ok')",
        )
        assert drawn.stdout == "ok\n", drawn
        assert drawn.stderr == "", drawn.stderr
        assert [r.mime_type for r in drawn.results] == ["image/png"]


@pytest.mark.parametrize(
    "flood",
    [
        "os.write(3, b'{\"truncated\": []}\\n')\nwhile True:\n    os.write(3, b'x\\n' * 32768)",
        "while True:\n    os.write(3, b'{\"file\": {}}\\n' * 4096)",
        "while True:\n    os.write(3, b'{\"result\": 1}\\n' * 4096)",
    ],
    ids=["unhashable-truncated", "empty-file-records", "result-records"],
)
def test_a_flood_of_forged_records_ends_the_run_promptly(
    interpreter: SyncExecutor, flood: str
) -> None:
    result = run(interpreter, "import os\n" + flood, limits={"wall_time_ms": 10_000})
    # Ended by the service for what it sent, not left to run until its wall time.
    assert result.status in {"output_limit", "internal_error"}, result
    assert_healthy(interpreter)


def test_forged_file_records_past_the_caps_are_an_internal_error(interpreter: SyncExecutor) -> None:
    record = (
        '{"file": {"path": "PATH", "size_bytes": 1, "mime_type": "text/plain", '
        '"content_base64": "eA=="}}\n'
    )
    lines = "".join(record.replace("PATH", path) for path in ["a", "a", "b"])
    duplicate = run(interpreter, f"import os\nos.write(3, {lines!r}.encode())")
    assert duplicate.status == "internal_error", duplicate
    nested = "".join(record.replace("PATH", path) for path in ["d", "d/e"])
    inside = run(interpreter, f"import os\nos.write(3, {nested!r}.encode())")
    assert inside.status == "internal_error", inside
