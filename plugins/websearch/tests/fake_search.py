"""A local server speaking the Brave Search and Tavily wire formats, for the tests.

Neither real API can be reached from this machine (no network beyond loopback), so this stands in
for both: ``GET /res/v1/web/search`` as Brave (``X-Subscription-Token``; ``mixed.main`` ranking
web, news and FAQ results) and ``POST /search`` as Tavily (``Authorization: Bearer``). Only the keys
given with ``--keys`` are accepted (401 otherwise, in each API's error shape). The query picks
faults: ``slow`` waits 5 s, ``boom`` is an HTTP 500, ``garbage`` a 200 that is not the API's shape.
Every request's query and key are appended to ``GET /_seen`` (for the tests to check what arrived).

Run it with ``python fake_search.py --port N --keys k1,k2``.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

SEEN: list[dict] = []


def _brave(query: str) -> dict:
    web_results = [
        {
            "title": f"{query} - result {i}",
            "url": f"https://example.org/{i}",
            "description": f"About {query} ({i})",
            "age": "2 days ago",
            "profile": {"name": "ignored"},
        }
        for i in range(5)
    ]
    return {
        "type": "search",
        "query": {"original": query},
        "web": {"type": "search", "results": web_results},
        "news": {
            "type": "news",
            "results": [
                {
                    "title": f"News on {query}",
                    "url": "https://news.example.org/1",
                    "description": "Fresh",
                    "age": "1 hour ago",
                }
            ],
        },
        "faq": {
            "type": "faq",
            "results": [
                {
                    "question": f"What is {query}?",
                    "answer": "A thing.",
                    "title": "FAQ",
                    "url": "https://faq.example.org",
                }
            ],
        },
        # Brave's ranking across types: news first, then web result 1, the FAQ list, web result 0, ...
        "mixed": {
            "type": "mixed",
            "main": [
                {"type": "news", "all": True},
                {"type": "web", "index": 1, "all": False},
                {"type": "faq", "all": True},
                {"type": "web", "index": 0, "all": False},
                {"type": "web", "index": 2, "all": False},
                {"type": "web", "index": 3, "all": False},
            ],
        },
    }


def _tavily(query: str, max_results: int) -> dict:
    return {
        "query": query,
        "answer": None,
        "results": [
            {
                "title": f"{query} - result {i}",
                "url": f"https://example.com/{i}",
                "content": f"Text about {query}",
                "score": round(0.9 - i / 10, 2),
                "raw_content": None,
            }
            for i in range(max_results)
        ],
        "response_time": 0.1,
    }


async def _faults(query: str) -> web.Response | None:
    if query == "slow":
        await asyncio.sleep(5)
    if query == "boom":
        return web.json_response({"detail": {"error": "internal failure"}}, status=500)
    if query == "garbage":
        return web.json_response(["not", "a", "search", "answer"])
    return None


def make_app(keys: set[str]) -> web.Application:
    async def brave(request: web.Request) -> web.Response:
        query, key = request.query.get("q", ""), request.headers.get("X-Subscription-Token", "")
        SEEN.append({"api": "brave", "query": query, "key": key, "count": request.query.get("count")})
        if key not in keys:
            return web.json_response(
                {
                    "type": "ErrorResponse",
                    "error": {
                        "code": "SUBSCRIPTION_TOKEN_INVALID",
                        "detail": "The provided subscription token is invalid.",
                        "status": 401,
                    },
                },
                status=401,
            )
        return await _faults(query) or web.json_response(_brave(query))

    async def tavily(request: web.Request) -> web.Response:
        body = await request.json()
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ")
        SEEN.append(
            {"api": "tavily", "query": body.get("query"), "key": key, "max_results": body.get("max_results")}
        )
        if key not in keys:
            return web.json_response(
                {"detail": {"error": "Unauthorized: missing or invalid API key."}}, status=401
            )
        return await _faults(body.get("query", "")) or web.json_response(
            _tavily(body.get("query", ""), int(body.get("max_results") or 5))
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "OK"})

    async def seen(request: web.Request) -> web.Response:
        return web.json_response(SEEN)

    app = web.Application()
    app.router.add_get("/res/v1/web/search", brave)
    app.router.add_post("/search", tavily)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/_seen", seen)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", default="")
    args = parser.parse_args()
    web.run_app(
        make_app(set(filter(None, args.keys.split(",")))), host="127.0.0.1", port=args.port, print=None
    )
