"""Tool calling on the local model: how often SmolLM2 calls an offered tool, per tool format.

``python -m bench tools [--threads N] [--no-doc]`` (``hatch run bench tools``) serves the local
distribution's llama-cpp provider alone (``lamina run``) and asks the bundled SmolLM2-135M-Instruct
through ``POST /v1/chat/completions``, at temperature 0, seed 1 and max_tokens 64:

* 20 varied weather questions, offered a ``get_weather`` tool (every other one a ``get_time`` tool
  too), with ``tool_choice`` auto: how many answers are calls to get_weather, and how many of those
  name the question's city;
* the same 20 with ``tool_choice: required``: how many answers hold a whole, valid call;
* 10 questions no offered tool answers (jokes, arithmetic, ...), auto: how many answers are calls
  anyway (false calls; lower is better);
* the 20 weather questions with a call and its result fed back (role ``tool``), auto: how many
  answers are text that uses the result.

Each set runs twice on the same GGUF: "before" is Lamina's generic tool prompt (``tool_format:
lamina``, what this GGUF got before issue 11), "after" is SmolLM2's own format (what ``auto``
picks for it now).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import httpx

from bench.report import console_table, markdown_table, update_doc
from lamina.testing.tool_defs import TIME, WEATHER

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
MODEL = "SmolLM2-135M-Instruct"
FORMATS = {"before (tool_format: lamina)": "smollm2-lamina-format", "after (SmolLM2 format)": MODEL}
SAMPLING = {"temperature": 0, "seed": 1, "max_tokens": 64}

WEATHER_QUESTIONS = [
    ("What is the weather in Paris?", "Paris"),
    ("What's the weather like in Tokyo right now?", "Tokyo"),
    ("Is it raining in London?", "London"),
    ("How hot is it in Cairo today?", "Cairo"),
    ("Tell me the current temperature in Berlin in celsius.", "Berlin"),
    ("weather in new york", "New York"),
    ("Do I need an umbrella in Seattle today?", "Seattle"),
    ("Can you check the weather for Sydney?", "Sydney"),
    ("What is the temperature in Madrid in fahrenheit?", "Madrid"),
    ("Is it sunny in Rome?", "Rome"),
    ("How cold is it in Moscow right now?", "Moscow"),
    ("I'm flying to Toronto tomorrow. What's the weather there?", "Toronto"),
    ("Give me the weather forecast for Mumbai.", "Mumbai"),
    ("What's it like outside in Chicago?", "Chicago"),
    ("Check the weather in Amsterdam please.", "Amsterdam"),
    ("Is it snowing in Oslo?", "Oslo"),
    ("Current weather conditions in Lisbon?", "Lisbon"),
    ("What is the weather in Paris, and what time is it there?", "Paris"),
    ("How windy is it in Dublin?", "Dublin"),
    ("Please tell me the weather in Buenos Aires.", "Buenos Aires"),
]
OTHER_QUESTIONS = [
    "Tell me a joke about cats.",
    "What is 12 times 7?",
    "Write a haiku about the sea.",
    "Who wrote Romeo and Juliet?",
    "Translate 'good morning' into French.",
    "What is the capital of Japan?",
    "Give me three tips for sleeping better.",
    "Hello! How are you?",
    "Explain what a noun is.",
    "What is the boiling point of water at sea level?",
]
RESULT = "{city}: 18 degrees celsius, sunny"


def _tools(i: int) -> list[dict]:
    return [WEATHER, TIME] if i % 2 else [WEATHER]


def _chat(client: httpx.Client, model: str, messages: list[dict], tools: list[dict], **extra) -> dict:
    body = {"model": model, "messages": messages, "tools": tools, **SAMPLING, **extra}
    resp = client.post("/v1/chat/completions", json=body)
    resp.raise_for_status()
    return resp.json()["choices"][0]["message"]


def _weather_calls(message: dict) -> list[dict]:
    out = []
    for call in message.get("tool_calls") or []:
        if call["function"]["name"] == "get_weather":
            try:
                out.append(json.loads(call["function"]["arguments"]))
            except json.JSONDecodeError:
                continue
    return out


def _measure(client: httpx.Client, model: str) -> dict[str, int]:
    counts = {"auto_calls": 0, "auto_city": 0, "required_calls": 0, "false_calls": 0, "result_text": 0}
    for i, (question, city) in enumerate(WEATHER_QUESTIONS):
        ask = [{"role": "user", "content": question}]
        calls = _weather_calls(_chat(client, model, ask, _tools(i)))
        counts["auto_calls"] += bool(calls)
        counts["auto_city"] += any(city.lower() in str(c.get("city", "")).lower() for c in calls)
        forced = _weather_calls(_chat(client, model, ask, [WEATHER], tool_choice="required"))
        counts["required_calls"] += any(isinstance(c.get("city"), str) for c in forced)
        call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        call["function"]["arguments"] = json.dumps({"city": city})
        history = [
            *ask,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": RESULT.format(city=city)},
        ]
        answer = _chat(client, model, history, _tools(i))
        text = answer.get("content") or ""
        counts["result_text"] += not answer.get("tool_calls") and ("18" in text or "sunny" in text.lower())
    for i, question in enumerate(OTHER_QUESTIONS):
        answer = _chat(client, model, [{"role": "user", "content": question}], _tools(i))
        counts["false_calls"] += bool(answer.get("tool_calls"))
    return counts


def _start_lamina(work: Path, threads: int):
    """``lamina run`` with the local distribution's llama-cpp provider alone (it loads in seconds)."""
    from lamina.testing.processes import lamina_server

    config = {
        "version": 2,
        "image_name": "bench-tools",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {
                    "provider_id": "llama-cpp",
                    "provider_type": "inline::llama-cpp",
                    "config": {"parallel": 1, "threads": threads},
                }
            ]
        },
        "models": [
            # The same GGUF again, pinned to Lamina's generic tool prompt: the "before" side.
            {
                "model_id": FORMATS["before (tool_format: lamina)"],
                "provider_id": "llama-cpp",
                "provider_model_id": MODEL,
                "metadata": {"tool_format": "lamina"},
            }
        ],
    }
    return lamina_server(config, work, env={"LAMINA_LOG_LEVEL": "warning"})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench tools", description=__doc__.split("\n")[0])
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--threads", type=int, default=1, help="llama.cpp threads (1 copes best with a busy machine)"
    )
    args = parser.parse_args(argv)
    results: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="lamina-bench-tools-") as tmp:
        with (
            _start_lamina(Path(tmp), args.threads) as lamina,
            httpx.Client(base_url=lamina.url, timeout=600) as client,
        ):
            for label, model in FORMATS.items():
                results[label] = _measure(client, model)
                print(f"{label}: {results[label]}", flush=True)
    n, m = len(WEATHER_QUESTIONS), len(OTHER_QUESTIONS)
    measures = [
        ("weather question, auto: answered with a get_weather call", "auto_calls", n),
        ("... of which the call names the question's city", "auto_city", n),
        ("weather question, required: a whole, valid call", "required_calls", n),
        ("tool result fed back, auto: a text answer using it", "result_text", n),
        ("unrelated question, auto: called a tool anyway (lower is better)", "false_calls", m),
    ]
    headers = ["measure", *FORMATS]
    rows = [[what, *(f"{results[label][key]}/{total}" for label in FORMATS)] for what, key, total in measures]
    print(console_table(headers, rows, "lrr"))
    if not args.no_doc:
        text = "\n".join(
            [
                "## Tool calling (local model)",
                "",
                f"Command: `hatch run bench tools --threads {args.threads}`. `lamina run` with the local "
                "distribution's inline::llama-cpp provider (SmolLM2-135M-Instruct Q4_1, the bundled GGUF), "
                "`POST /v1/chat/completions` at temperature 0, seed 1, max_tokens 64; "
                f"{n} varied weather questions offered a get_weather tool (every other one a get_time tool "
                f"too) and {m} questions no offered tool answers (bench/tools.py lists them). Before: "
                "Lamina's generic tool prompt (`tool_format: lamina`, what this GGUF got before); after: "
                "SmolLM2's own format (`<tools>` listing, `<tool_call>[...]` answers under a llama.cpp "
                f"grammar), which `auto` picks for SmolLM2 GGUFs. Python {sys.version.split()[0]}.",
                "",
                markdown_table(headers, rows, "lrr"),
            ]
        )
        update_doc(DOC, text, section="tools")
        print(f"\nwrote {DOC}")
    return 0
