"""Web search tool runtimes: Brave Search and Tavily (``builtin::websearch``, tool ``web_search``)."""
