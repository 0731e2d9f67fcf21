"""Nursery for agents: the MCP server (`mcp_server`) over the nursery_* tools, and an OpenAI-compatible chat
endpoint (`openai_api`) for the models Nursery trains. Neither is imported by the rest of the core."""
