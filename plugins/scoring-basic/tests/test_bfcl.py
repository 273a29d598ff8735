"""basic::bfcl on BFCL-shaped rows: each category, each rule of the AST checker, malformed answers and rows.

Rows are written the way Llama Stack's bfcl_v3 dataset carries them: ``function`` and ``ground_truth`` as
JSON text, ``id`` naming the category (``simple_3``, ``live_parallel_2-0-1``), ``language``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lamina.apis.scoring import ScoringFn, ScoringRowError
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina_scoring_basic.bfcl_checker import standardize
from lamina_scoring_basic.bfcl_decode import decode
from lamina_scoring_basic.config import BasicScoringConfig
from lamina_scoring_basic.plugin import lamina_scoring_functions
from lamina_scoring_basic.provider import BasicScoringProvider


def fn(name: str, required: list[str] | None = None, /, **properties: Any) -> dict[str, Any]:
    """A BFCL function definition; each property is its type, or its whole schema."""
    props = {k: v if isinstance(v, dict) else {"type": v, "description": k} for k, v in properties.items()}
    return {
        "name": name,
        "description": f"{name} (test)",
        "parameters": {"type": "dict", "properties": props, "required": required or []},
    }


def row(
    id_: str, functions: list[dict], truth: list[dict] | None, answer: str, language: str = "Python"
) -> dict:
    out = {
        "id": id_,
        "language": language,
        "function": json.dumps(functions),
        "generated_answer": answer,
        "question": [[{"role": "user", "content": "..."}]],
    }
    if truth is not None:
        out["ground_truth"] = json.dumps(truth)
    return out


TRIANGLE = fn("calculate_triangle_area", ["base", "height"], base="integer", height="integer", unit="string")
TRIANGLE_TRUTH = [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]


@pytest.fixture
def provider(tmp_path) -> BasicScoringProvider:
    context = ProviderContext(Api.scoring, "basic", "inline::basic", tmp_path)
    return BasicScoringProvider(BasicScoringConfig(), context)


def bfcl_fn() -> ScoringFn:
    res = next(r for r in lamina_scoring_functions() if r.identifier == "basic::bfcl")
    return ScoringFn(
        identifier=res.identifier,
        provider_resource_id=res.provider_resource_id,
        provider_id="basic",
        **res.params,
    )


async def score(provider: BasicScoringProvider, rows: list[dict]) -> list[dict]:
    return await provider.score_rows(bfcl_fn(), rows, None)


async def one(provider: BasicScoringProvider, r: dict) -> dict:
    return (await score(provider, [r]))[0]


def simple(answer: str) -> dict:
    return row("simple_0", [TRIANGLE], TRIANGLE_TRUTH, answer)


def test_registered_with_llama_stacks_id_description_and_return_type() -> None:
    res = next(r for r in lamina_scoring_functions() if r.identifier == "basic::bfcl")
    assert res.provider_resource_id == "bfcl"
    assert res.params["description"] == "BFCL complex scoring"
    assert res.params["return_type"] == {"type": "number"}
    assert res.params["params"] == {"type": "basic", "aggregation_functions": ["accuracy"]}


# -- simple: each rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "[calculate_triangle_area(base=10, height=5)]",
        "calculate_triangle_area(base=10, height=5)",  # brackets are optional
        "[calculate_triangle_area(base=10, height=5, unit='Units')]",  # strings compare normalised
        "[calculate_triangle_area(height=5, base=10, unit='units')]",
        "```python\n[calculate_triangle_area(base=10,\n height=5)]\n```",  # a code fence and line breaks
        "[calculate_triangle_area(base=2*5, height=5)]",  # constant arithmetic
    ],
)
async def test_a_correct_simple_answer_scores_1(provider, answer) -> None:
    assert await one(provider, simple(answer)) == {"score": 1.0}


@pytest.mark.parametrize(
    ("answer", "error_type", "says"),
    [
        (
            "[calculate_area(base=10, height=5)]",
            "simple_function_checker:wrong_func_name",
            "'calculate_area'",
        ),
        ("[calculate_triangle_area(base=10)]", "simple_function_checker:missing_required", "'height'"),
        (
            "[calculate_triangle_area(base=10, height=5, color='red')]",
            "simple_function_checker:unexpected_param",
            "'color'",
        ),
        ("[calculate_triangle_area(base=11, height=5)]", "value_error:others", "[10]"),
        ("[calculate_triangle_area(base='10', height=5)]", "type_error:simple", "type integer, got str"),
        (
            "[calculate_triangle_area(base=True, height=5)]",
            "type_error:simple",
            "got bool",
        ),  # a bool is no int
        ("[calculate_triangle_area(base=10.0, height=5)]", "type_error:simple", "got float"),
        ("[calculate_triangle_area(base=10, height=5, unit='cm')]", "value_error:string", "'cm'"),
        (
            "[calculate_triangle_area(base=10, height=5), calculate_triangle_area(base=10, height=5)]",
            "simple_function_checker:wrong_count",
            "has 2",
        ),
        ("[calculate_triangle_area(10, 5)]", "simple_function_checker:positional_argument", "2 argument(s)"),
    ],
)
async def test_each_kind_of_wrong_simple_answer_scores_0_with_the_reason(
    provider, answer, error_type, says
) -> None:
    result = await one(provider, simple(answer))
    assert result["score"] == 0.0
    assert result["error_type"] == error_type
    assert says in result["error"], result["error"]


async def test_dotted_names_may_be_written_with_underscores(provider) -> None:
    functions = [fn("math.factorial", ["number"], number="integer")]
    truth = [{"math.factorial": {"number": [5]}}]
    rows = [
        row("simple_7", functions, truth, a)
        for a in ("[math.factorial(number=5)]", "[math_factorial(number=5)]")
    ]
    rows.append(row("simple_7", functions, truth, "[math_fact(number=5)]"))
    assert [r["score"] for r in await score(provider, rows)] == [1.0, 1.0, 0.0]


async def test_an_optional_parameter_needs_an_empty_string_among_its_answers(provider) -> None:
    functions = [fn("convert", ["amount"], amount="float", to="string")]
    rows = [
        # "to" has "" among its answers: it may be left out
        row(
            "simple_1",
            functions,
            [{"convert": {"amount": [2.5], "to": ["EUR", ""]}}],
            "[convert(amount=2.5)]",
        ),
        # here it must be given
        row("simple_1", functions, [{"convert": {"amount": [2.5], "to": ["EUR"]}}], "[convert(amount=2.5)]"),
        # an int where a float is declared passes (Python widens it)
        row(
            "simple_1",
            functions,
            [{"convert": {"amount": [2.0], "to": ["EUR"]}}],
            "[convert(amount=2, to='eur')]",
        ),
    ]
    results = await score(provider, rows)
    assert [r["score"] for r in results] == [1.0, 0.0, 1.0]
    assert results[1]["error_type"] == "simple_function_checker:missing_optional"
    assert "'to'" in results[1]["error"]


async def test_a_variable_name_matches_where_the_ground_truth_names_it(provider) -> None:
    functions = [fn("repeat", ["times"], times="integer")]
    truth = [{"repeat": {"times": ["num_items"]}}]  # the ground truth's type (str) is not the declared one
    rows = [
        row("simple_2", functions, truth, a) for a in ("[repeat(times=num_items)]", "[repeat(times=other)]")
    ]
    assert [r["score"] for r in await score(provider, rows)] == [1.0, 0.0]


def test_standardize_drops_what_bfcl_does_not_count() -> None:
    assert standardize("San Francisco, CA") == standardize("san francisco ca") == "sanfranciscoca"
    assert standardize("2024-04-01") == standardize("2024/04/01") == "20240401"
    assert standardize("it's") == 'it"s'


# -- nested types: arrays, tuples, dicts, lists of dicts ----------------------------------------------


async def test_arrays_and_tuples_check_their_elements(provider) -> None:
    functions = [
        fn(
            "stats",
            ["numbers"],
            numbers={"type": "array", "items": {"type": "integer"}},
            names={"type": "array", "items": {"type": "string"}},
            pair={"type": "tuple", "items": {"type": "float"}},
        )
    ]
    truth = [{"stats": {"numbers": [[1, 2, 3]], "names": [["New York", "LA"], ""], "pair": [[1.5, 2.0], ""]}}]
    answers = {
        "[stats(numbers=[1, 2, 3])]": 1.0,
        "[stats(numbers=[1, 2, 3], names=['new york', 'la'])]": 1.0,  # string elements normalised
        "[stats(numbers=[1, 2, 3], pair=(1.5, 2))]": 1.0,  # a tuple; an int element for a float
        "[stats(numbers=[1, '2', 3])]": 0.0,
        "[stats(numbers=[1, 2])]": 0.0,
        "[stats(numbers=[3, 2, 1])]": 0.0,  # order counts in a list
    }
    results = await score(provider, [row("simple_4", functions, truth, a) for a in answers])
    assert [r["score"] for r in results] == list(answers.values())
    assert results[3]["error_type"] == "type_error:nested"
    assert results[4]["error_type"] == "value_error:list/tuple"


async def test_dicts_compare_key_by_key(provider) -> None:
    functions = [fn("book_hotel", ["options"], options="dict")]
    truth = [{"book_hotel": {"options": [{"room": ["double", "Double Room"], "breakfast": [True, ""]}]}}]
    answers = {
        "[book_hotel(options={'room': 'double room', 'breakfast': True})]": (1.0, None),
        "[book_hotel(options={'room': 'double'})]": (1.0, None),  # breakfast is optional
        "[book_hotel(options={'room': 'single'})]": (0.0, "value_error:dict_value"),
        "[book_hotel(options={'room': 'double', 'pool': True})]": (0.0, "value_error:dict_key"),
        "[book_hotel(options={'breakfast': True})]": (0.0, "value_error:dict_key"),  # room is missing
        "[book_hotel(options='double')]": (0.0, "type_error:simple"),
    }
    results = await score(provider, [row("simple_5", functions, truth, a) for a in answers])
    assert [(r["score"], r.get("error_type")) for r in results] == list(answers.values())


async def test_a_list_of_dicts_matches_dict_by_dict_in_order(provider) -> None:
    functions = [fn("plan", ["stops"], stops={"type": "array", "items": {"type": "dict"}})]
    truth = [{"plan": {"stops": [[{"city": ["Paris"], "days": [2]}, {"city": ["Rome"], "days": [3, ""]}]]}}]
    answers = {
        "[plan(stops=[{'city': 'paris', 'days': 2}, {'city': 'Rome'}])]": 1.0,
        "[plan(stops=[{'city': 'Rome', 'days': 3}, {'city': 'Paris', 'days': 2}])]": 0.0,
        "[plan(stops=[{'city': 'Paris', 'days': 2}])]": 0.0,
    }
    results = await score(provider, [row("simple_6", functions, truth, a) for a in answers])
    assert [r["score"] for r in results] == list(answers.values())
    assert results[2]["error_type"] == "value_error:list_dict_count"


# -- multiple, parallel, parallel_multiple ------------------------------------------------------------

WEATHER = fn("get_weather", ["city"], city="string", unit="string")
STOCK = fn("get_stock_price", ["ticker"], ticker="string")


async def test_multiple_checks_the_one_call_against_the_function_the_ground_truth_names(provider) -> None:
    truth = [{"get_stock_price": {"ticker": ["AAPL"]}}]
    answers = {
        "[get_stock_price(ticker='aapl')]": (1.0, None),
        "[get_weather(city='Cupertino')]": (0.0, "simple_function_checker:wrong_func_name"),
        "[get_stock_price(ticker='AAPL'), get_weather(city='Cupertino')]": (
            0.0,
            "multiple_function_checker:wrong_count",
        ),
    }
    results = await score(provider, [row("multiple_3", [WEATHER, STOCK], truth, a) for a in answers])
    assert [(r["score"], r.get("error_type")) for r in results] == list(answers.values())


async def test_parallel_matches_calls_in_any_order(provider) -> None:
    truth = [
        {"get_weather": {"city": ["Boston", "Boston, MA"], "unit": ["celsius", ""]}},
        {"get_weather": {"city": ["Denver"], "unit": ["celsius", ""]}},
    ]
    answers = {
        "[get_weather(city='Denver'), get_weather(city='Boston, MA', unit='celsius')]": 1.0,
        "[get_weather(city='Boston'), get_weather(city='Denver')]": 1.0,
        "[get_weather(city='Boston'), get_weather(city='Austin')]": 0.0,
        "[get_weather(city='Boston')]": 0.0,
    }
    results = await score(provider, [row("parallel_9", [WEATHER], truth, a) for a in answers])
    assert [r["score"] for r in results] == list(answers.values())
    assert results[2]["error_type"] == "parallel_function_checker_no_order:cannot_find_match"
    assert "expected call 1 (get_weather)" in results[2]["error"]
    assert results[3]["error_type"] == "parallel_function_checker_no_order:wrong_count"


async def test_parallel_finds_a_matching_where_taking_the_first_fit_would_not(provider) -> None:
    # Call "Boston" fits both expected calls; taken by the first, it would leave the second nothing.
    truth = [{"get_weather": {"city": ["Boston", "Denver"]}}, {"get_weather": {"city": ["Boston"]}}]
    r = row("parallel_1", [WEATHER], truth, "[get_weather(city='Boston'), get_weather(city='Denver')]")
    assert await one(provider, r) == {"score": 1.0}


async def test_parallel_multiple_and_live_categories(provider) -> None:
    truth = [{"get_stock_price": {"ticker": ["MSFT"]}}, {"get_weather": {"city": ["Seattle"], "unit": [""]}}]
    good = "[get_weather(city='Seattle'), get_stock_price(ticker='MSFT')]"
    bad = "[get_weather(city='Seattle', unit='kelvin'), get_stock_price(ticker='MSFT')]"
    rows = [
        row("parallel_multiple_4", [WEATHER, STOCK], truth, good),
        row("parallel_multiple_4", [WEATHER, STOCK], truth, bad),
        row("live_parallel_multiple_0-0-0", [WEATHER, STOCK], truth, good),
        row("live_simple_3-2-0", [STOCK], truth[:1], "[get_stock_price(ticker='MSFT')]"),
    ]
    assert [r["score"] for r in await score(provider, rows)] == [1.0, 0.0, 1.0, 1.0]


async def test_a_test_category_column_names_the_category_of_a_row_without_an_id(provider) -> None:
    truth = [{"get_weather": {"city": ["Oslo"]}}, {"get_weather": {"city": ["Bergen"]}}]
    r = row("", [WEATHER], truth, "[get_weather(city='Bergen'), get_weather(city='Oslo')]")
    del r["id"]
    r["test_category"] = "parallel"
    assert await one(provider, r) == {"score": 1.0}
    # with both, the id decides, as in Llama Stack
    both = r | {"id": "parallel_8", "test_category": "simple"}
    assert await one(provider, both) == {"score": 1.0}


# -- relevance ----------------------------------------------------------------------------------------


async def test_irrelevance_scores_an_answer_that_calls_nothing(provider) -> None:
    answers = {
        "I cannot help with that: no function fits.": 1.0,
        "[]": 1.0,
        "[get_weather(city='Paris')]": 0.0,
    }
    rows = [row("irrelevance_12", [WEATHER], None, a) for a in answers]  # no ground truth needed
    rows.append(row("live_irrelevance_3-0-1", [WEATHER], [], "Sorry."))
    results = await score(provider, rows)
    assert [r["score"] for r in results] == [*answers.values(), 1.0]
    assert results[2]["error_type"] == "irrelevance:function_called"


async def test_live_relevance_scores_an_answer_that_calls_something(provider) -> None:
    rows = [
        row("live_relevance_1-1-0", [WEATHER], [], a) for a in ("[get_weather(city='Rome')]", "It is sunny.")
    ]
    results = await score(provider, rows)
    assert [r["score"] for r in results] == [1.0, 0.0]
    assert results[1]["error_type"] == "relevance:no_function_call"


# -- malformed answers score 0, never crash -----------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "Sure! The area is 25.",
        "[calculate_triangle_area(base=10, height=5",
        "[1, 2]",
        "{'base': 10}",
        "[calculate_triangle_area(**{'base': 10, 'height': 5})]",
        "[calculate_triangle_area(base=10, height=5)] I hope this helps",
        "[(lambda: 1)()]",
        "[calculate_triangle_area(base={[1]: 2}, height=5)]",
        "[" * 2000 + "]" * 2000,
        "\x00",
    ],
)
async def test_an_answer_that_is_not_a_call_scores_0(provider, answer) -> None:
    result = await one(provider, simple(answer))
    assert result["score"] == 0.0
    assert result["error_type"].startswith(("ast_decoder:", "simple_function_checker:")), result


def test_arithmetic_that_would_build_a_huge_value_is_left_as_text() -> None:
    (call,) = decode("[f(a='a' * 10**9, b=2**10**10, c=5*60, d=1/4, e=1/0)]", "Python")
    assert call.args == {"a": "'a' * 10 ** 9", "b": "2 ** 10 ** 10", "c": 300, "d": 0.25, "e": "1 / 0"}


def test_python_decoding_reads_values_and_nested_calls() -> None:
    calls = decode(
        "[a.b.c(x=-1.5, y=None, z=[1, (2, 3)], w={'k': True}, v=math.pi, u=f(q=1), t=g(2), s=...)]", "Python"
    )
    assert len(calls) == 1 and calls[0].name == "a.b.c"
    assert calls[0].args == {
        "x": -1.5,
        "y": None,
        "z": [1, (2, 3)],
        "w": {"k": True},
        "v": "math.pi",
        "u": {"f": {"q": 1}},
        "t": "g(2)",
        "s": "...",
    }


# -- Java and JavaScript ------------------------------------------------------------------------------

JAVA_FN = fn(
    "Roles.pageCount",
    ["pageNo", "pageSize"],
    pageNo="integer",
    pageSize="integer",
    timeout="long",
    ratio="float",
    scale="double",
    strict="boolean",
    name="String",
    controller="any",
    tags={"type": "ArrayList", "items": {"type": "String"}},
    ids={"type": "Array", "items": {"type": "integer"}},
    params="HashMap",
)
JAVA_TRUTH = [
    {
        "Roles.pageCount": {
            "pageNo": [3],
            "pageSize": [20],
            "timeout": [5000, ""],
            "ratio": [0.5, ""],
            "scale": [2.5, ""],
            "strict": [True, ""],
            "name": ["admin", ""],
            "controller": ["mapController", ""],
            "tags": [["a", "b"], ""],
            "ids": [[1, 2], ""],
            "params": [{"limit": [50], "schema": ["public"]}, ""],
        }
    }
]


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("[Roles.pageCount(pageNo=3, pageSize=20)]", 1.0),
        (
            "[Roles.pageCount(pageNo=3, pageSize=20, timeout=5000L, ratio=0.5f, scale=2.5, "
            'strict=true, name="Admin", controller=mapController)]',
            1.0,
        ),
        (
            '[Roles.pageCount(pageNo=3, pageSize=20, tags=new ArrayList<>(Arrays.asList("a", '
            '"b")), ids=new int[]{1, 2}, params=new HashMap<String, Object>() {{ put("limit", 50); '
            'put("schema", "public"); }})]',
            1.0,
        ),
        (
            '[Roles.pageCount(pageNo=3, pageSize=20, tags=new ArrayList<String>() {{ add("a"); add("b");}})]',
            1.0,
        ),
        ("[Roles_pageCount(pageNo=3, pageSize=20)]", 1.0),
        ("[Roles.pageCount(pageNo=3, pageSize=20)", 1.0),  # a bracket left out
        ("Roles.pageCount(pageNo=3, pageSize=20);", 1.0),
        ("[Roles.pageCount(pageNo=4, pageSize=20)]", 0.0),
        ('[Roles.pageCount(pageNo="3", pageSize=20)]', 0.0),  # a string for an integer
        (
            "[Roles.pageCount(pageNo=3, pageSize=20, timeout=5000)]",
            0.0,
        ),  # a long needs L
        ("[Roles.pageCount(pageNo=3, pageSize=20, ratio=0.5)]", 0.0),  # a float needs f
        ("[Roles.pageCount(pageNo=3, pageSize=20, ids=new int[]{2, 1})]", 0.0),
        ("[Roles.pageCount(pageNo=3)]", 0.0),
        ("Roles.pageCount(pageNo=3, pageSize=20", 0.0),  # not Java syntax
        ("I would call pageCount", 0.0),
    ],
)
async def test_java_answers(provider, answer, score) -> None:
    result = await one(provider, row("java_18", [JAVA_FN], JAVA_TRUTH, answer, language="Java"))
    assert result["score"] == score, result


JS_FN = fn(
    "fetchUsers",
    ["url"],
    url="String",
    retries="integer",
    delay="float",
    useCache="Boolean",
    big="Bigint",
    headers="dict",
    ids={"type": "array", "items": {"type": "integer"}},
    callback="any",
)
JS_TRUTH = [
    {
        "fetchUsers": {
            "url": ["https://api.example.com/users"],
            "retries": [3, ""],
            "delay": [1.5, ""],
            "useCache": [False, ""],
            "big": [10, ""],
            "headers": [{"accept": ["json"], "lang": ["en", ""]}, ""],
            "ids": [[1, 2, 3], ""],
            "callback": ["handleUsers", ""],
        }
    }
]


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("[fetchUsers(url='https://api.example.com/users')]", 1.0),
        ("fetchUsers(url='https://api.example.com/users')]", 1.0),
        (
            '[fetchUsers(url="https://api.example.com/users", retries=3, delay=1.5, useCache=false, big=10n, '
            'headers={accept: "json", "lang": "en"}, ids=[1, 2, 3], callback=handleUsers)]',
            1.0,
        ),
        ('[fetchUsers(url="https://api.example.com/users", ids=new Array(1, 2, 3))]', 1.0),
        ('[fetchUsers(url="https://api.example.com/users", big=10)]', 0.0),  # a Bigint needs n
        ('[fetchUsers(url="https://api.example.com/users", retries="3")]', 0.0),
        ('[fetchUsers(url="https://api.example.com/users", headers={accept: "xml"})]', 0.0),
        ('[fetchUsers(url="https://api.example.com/users", ids=[1, "2", 3])]', 0.0),
        (
            '[fetchUsers(url="https://api.example.com/users"), fetchUsers(url="https://api.example.com/users")]',
            0.0,
        ),
        ("fetchUsers(url=", 0.0),
    ],
)
async def test_javascript_answers(provider, answer, score) -> None:
    result = await one(provider, row("javascript_4", [JS_FN], JS_TRUTH, answer, language="JavaScript"))
    assert result["score"] == score, result


async def test_java_and_javascript_literals_read_as_their_values(provider) -> None:
    """Escapes in string literals are read (\\" is "), and elements of type any are the literals they are."""
    parts = {"type": "ArrayList", "items": {"type": "any"}}
    spec = fn("Codec.decode", ["parts", "sa"], parts=parts, sa="any")
    truth = [{"Codec.decode": {"parts": [["id", 42, "on", True]], "sa": ['new Addr("10.0.0.1", 80)']}}]
    java = (
        '[Codec.decode(parts=new ArrayList<>(Arrays.asList("id", 42, "on", true)), '
        'sa="new Addr(\\"10.0.0.1\\", 80)")]'
    )
    js_spec = fn("decode", ["parts"], parts={"type": "array", "items": {"type": "any"}}, label="String")
    js_truth = [{"decode": {"parts": [["id", 42, True]], "label": ['say "hi"']}}]
    js = "[decode(parts=['id', 42, true], label='say \\\"hi\\\"')]"
    rows = [
        row("java_36", [spec], truth, java, language="Java"),
        row("java_36", [spec], truth, java.replace("42", "43"), language="Java"),
        row("javascript_5", [js_spec], js_truth, js, language="JavaScript"),
    ]
    assert [r["score"] for r in await score(provider, rows)] == [1.0, 0.0, 1.0]


async def test_a_parallel_miss_explains_the_call_of_the_expected_function(provider) -> None:
    truth = [{"get_stock_price": {"ticker": ["MSFT"]}}, {"get_weather": {"city": ["Seattle"]}}]
    answer = "[get_stock_price(ticker='MSFT'), get_weather(city='Tacoma')]"
    result = await one(provider, row("parallel_multiple_2", [WEATHER, STOCK], truth, answer))
    assert result["score"] == 0.0
    assert "call 1 (get_weather): parameter 'city' is 'Tacoma'" in result["error"], result["error"]


async def test_values_nested_thousands_deep_score_0_without_crashing(provider) -> None:
    spec = fn("f", [], x="array", d="dict")
    truth = [{"f": {"x": [[1], ""], "d": [{"a": [1]}, ""]}}]
    answers = ["[f(x=" + "[" * 3000 + "]" * 3000 + ")]", "[f(d=" + "{a:" * 3000 + "1" + "}" * 3000 + ")]"]
    results = await score(provider, [row("javascript_1", [spec], truth, a, "JavaScript") for a in answers])
    assert [r["score"] for r in results] == [0.0, 0.0]


def test_javascript_and_java_calls_decode_in_sequence() -> None:
    assert [c.name for c in decode("[a(x=1), b.c(y=2)]", "JavaScript")] == ["a", "b.c"]
    assert [c.name for c in decode('[A.a(x=1), B.b(y="p, q")]', "Java")] == ["A.a", "B.b"]
    assert decode("[]", "Java") == [] and decode("[]", "JavaScript") == []


# -- malformed rows are 400s naming the row -----------------------------------------------------------


async def test_a_malformed_row_is_a_row_error_naming_the_row_and_the_fix(provider) -> None:
    good = simple("[calculate_triangle_area(base=10, height=5)]")
    no_truth = {k: v for k, v in good.items() if k != "ground_truth"}
    no_answer = {k: v for k, v in good.items() if k != "generated_answer"}
    no_id = {k: v for k, v in good.items() if k != "id"}
    cases = [
        (no_truth, "no column 'ground_truth'"),
        (no_answer, "no column 'generated_answer'"),
        (no_id, "no column 'id'"),
        (good | {"language": "Rust"}, "column 'language' is 'Rust'"),
        (good | {"function": "[{not json"}, "column 'function' is not JSON"),
        (good | {"ground_truth": json.dumps(["calculate_triangle_area(base=10, height=5)"])}, "executable"),
        (good | {"ground_truth": json.dumps([{"nope": {"x": [1]}}]), "id": "multiple_1"}, "does not define"),
        (
            good | {"function": json.dumps([fn("calculate_triangle_area", [], base="decimal")])},
            "declares type 'decimal'",
        ),
    ]
    for bad, says in cases:
        with pytest.raises(ScoringRowError) as err:
            await score(provider, [good, bad])
        assert err.value.row == 1, says
        assert says in err.value.message, err.value.message


async def test_rows_as_objects_score_like_rows_as_json_text(provider) -> None:
    r = simple("[calculate_triangle_area(base=10, height=5)]")
    r["function"], r["ground_truth"] = json.loads(r["function"]), json.loads(r["ground_truth"])
    assert await one(provider, r) == {"score": 1.0}


async def test_a_large_page_scores_off_the_loop(provider) -> None:
    rows = [simple("[calculate_triangle_area(base=10, height=5)]"), simple("[f(x=1)]")] * 400
    results = await score(provider, rows)
    assert [r["score"] for r in results] == [1.0, 0.0] * 400
