"""The service's tools as the native tools of agent frameworks, called over HTTP by the client.

One module per framework, each behind an extra of its own (import it only when it is installed):

- `companion_client.integrations.langchain`: `langchain_tools(client)`, LangChain `BaseTool`s
  (`pip install 'companion-client[langchain]'`);
- `companion_client.integrations.llama_index`: `llama_index_tools(client)`, LlamaIndex tools
  (`[llama-index]`);
- `companion_client.integrations.openai_agents`: `openai_agents_tools(client)`, the OpenAI Agents
  SDK's `FunctionTool`s (`[openai-agents]`).

Each carries the tool's name, description and input schema over as the service lists them (the
model sees the schema the service validates with), calls the service sync and async where the
framework has both, and reports a failed call the framework's way with the service's own detail.
This package itself needs no framework: it holds the protocols a tool source meets.
"""

from companion_client.integrations._source import (
    AsyncToolSource,
    ToolOutcome,
    ToolSource,
    ToolSpec,
    failure_message,
)

__all__ = ["AsyncToolSource", "ToolOutcome", "ToolSource", "ToolSpec", "failure_message"]
