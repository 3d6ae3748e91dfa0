"""MCP prompts: task templates a user picks in their client (a slash command, a menu) to start an
agent on work this server's tools do well.

Each prompt needs certain tools and is offered only to a caller who is listed them (its key's
scopes allow them, and they are enabled), so a prompt never asks for a tool the model cannot call.

- `answer-from-knowledge` (`collection`, `question`): search one collection, answer from what it
  says only, and cite each claim's document, page and headings.
- `analyze-data` (`question`, optional `data`): answer with Python in the sandbox (`run_code`),
  showing the code's figures and numbers rather than guessing them.
"""

from __future__ import annotations

from collections.abc import Collection as Names
from collections.abc import Sequence
from dataclasses import dataclass

import mcp_types as types

from companion.knowledge import Collection
from companion.tools._errors import PromptArgumentsInvalid, PromptNotFound
from companion.tools._mcp_resources import DOCUMENT_TEMPLATE

__all__ = [
    "ANALYZE_DATA",
    "ANSWER_FROM_KNOWLEDGE",
    "PROMPTS",
    "PromptSpec",
    "find",
    "offered",
    "render",
]


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """A prompt's listing, and the tools a caller must be listed to be offered it."""

    prompt: types.Prompt
    needs: frozenset[str]

    @property
    def name(self) -> str:
        """The prompt's name."""
        return self.prompt.name


ANSWER_FROM_KNOWLEDGE = PromptSpec(
    types.Prompt(
        name="answer-from-knowledge",
        title="Answer from a knowledge collection",
        description=(
            "Answer a question from one of your knowledge collections only, searching it and "
            "citing the document, page and headings of every passage used."
        ),
        arguments=[
            types.PromptArgument(
                name="collection", description="The collection to answer from.", required=True
            ),
            types.PromptArgument(name="question", description="The question.", required=True),
        ],
    ),
    frozenset({"search_knowledge"}),
)

ANALYZE_DATA = PromptSpec(
    types.Prompt(
        name="analyze-data",
        title="Analyze data with Python",
        description=(
            "Answer a question about data by running Python in the sandbox (pandas, numpy, "
            "matplotlib when installed): computed numbers and figures, not guesses."
        ),
        arguments=[
            types.PromptArgument(
                name="question", description="What to find out from the data.", required=True
            ),
            types.PromptArgument(
                name="data",
                description="The data itself (CSV or JSON text), or where the model finds it.",
                required=False,
            ),
        ],
    ),
    frozenset({"run_code"}),
)

PROMPTS = (ANALYZE_DATA, ANSWER_FROM_KNOWLEDGE)


def offered(visible_tools: Names[str]) -> list[PromptSpec]:
    """The prompts whose tools are all among `visible_tools`, by name."""
    return [spec for spec in PROMPTS if spec.needs <= set(visible_tools)]


def find(name: str, specs: Sequence[PromptSpec], arguments: dict[str, str] | None) -> PromptSpec:
    """The prompt `name` among `specs` (those offered to the caller), with its arguments checked
    (`PromptNotFound`, `PromptArgumentsInvalid`)."""
    spec = next((s for s in specs if s.name == name), None)
    if spec is None:
        raise PromptNotFound(f"no prompt named {name!r}")
    given = arguments or {}
    declared = {argument.name: argument for argument in spec.prompt.arguments or []}
    unknown = sorted(set(given) - set(declared))
    missing = [n for n, a in declared.items() if a.required and not given.get(n, "").strip()]
    if unknown or missing:
        problems = [f"missing required argument {n!r}" for n in missing]
        problems += [f"unknown argument {n!r}" for n in unknown]
        raise PromptArgumentsInvalid(
            f"prompt {name!r}: {'; '.join(problems)}",
            details={"missing": missing, "unknown": unknown},
        )
    return spec


def render(
    spec: PromptSpec,
    arguments: dict[str, str],
    visible_tools: Names[str],
    collection: Collection | None = None,
) -> types.GetPromptResult:
    """The prompt's messages for these (checked) arguments; `collection` is the one
    `answer-from-knowledge` names, looked up by the caller."""
    if spec is ANSWER_FROM_KNOWLEDGE:
        assert collection is not None
        text = _answer_from_knowledge(collection, arguments["question"].strip())
        messages = [_user(text)]
    else:
        messages = [_user(_analyze_data(arguments["question"].strip(), visible_tools))]
        data = arguments.get("data", "").strip()
        if data:
            messages.append(_user(f"The data:\n\n{data}"))
    return types.GetPromptResult(description=spec.prompt.description, messages=messages)


def _user(text: str) -> types.PromptMessage:
    return types.PromptMessage(role="user", content=types.TextContent(text=text))


def _answer_from_knowledge(collection: Collection, question: str) -> str:
    # Hybrid search needs the collection's vectors; BM25 only matches the words used, so the
    # model is told to try the words the documents would use.
    if collection.embedding is not None:
        how = (
            'use mode "hybrid" (it finds passages by meaning as well as by words), and search '
            "again with other words if the first results miss"
        )
    else:
        how = (
            "it matches words, not meaning: search several times with the words the documents "
            "themselves would use (synonyms, the technical term, a shorter query)"
        )
    about = f" ({collection.description})" if collection.description else ""
    document_uri = DOCUMENT_TEMPLATE.replace("{collection}", collection.name)
    return (
        f"Answer the question below from the knowledge collection `{collection.name}`"
        f"{about}, which holds {_documents(collection.document_count)}.\n\n"
        f'1. Search it with the `search_knowledge` tool (collection "{collection.name}"); '
        f"{how}.\n"
        "2. When a passage is not enough, read its whole document: the resource "
        f"{document_uri} (the passage's `document_id`).\n"
        "3. Answer from those passages only. After each claim, cite where it comes from: the "
        "document's title (or its id), and the passage's `page` and `headings` when it has "
        "them, e.g. [Refund policy, p. 3, Returns > Deadlines].\n"
        "4. If the collection does not answer the question, say so plainly instead of "
        "answering from general knowledge.\n\n"
        f"Question: {question}"
    )


def _documents(count: int) -> str:
    return f"{count} document" if count == 1 else f"{count} documents"


def _analyze_data(question: str, visible_tools: Names[str]) -> str:
    steps = [
        "Answer the question below by running Python with the `run_code` tool (its "
        "description lists the packages the sandbox has). The sandbox has no network: put the "
        "data into the code itself.",
    ]
    if "open_session" in visible_tools:
        steps.append(
            "For more than one step, open a session with `open_session` and pass its "
            "`session_id` to `run_code`, so the data is loaded once and variables persist; close "
            "it with `close_session` at the end."
        )
    steps += [
        "Look at the data first (shape, columns, types, missing values) before computing.",
        "Print the numbers you report, and draw a matplotlib figure when a chart helps: open "
        "figures come back as images.",
        "Report the result with the code's own output; if a step fails, read the error, fix "
        "the code and run it again.",
    ]
    listed = "\n".join(f"{n}. {step}" for n, step in enumerate(steps, 1))
    return f"{listed}\n\nQuestion: {question}"
