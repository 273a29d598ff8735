"""The event sequence of one Responses run, built from facade-neutral steps.

A facade feeds ``ResponseEvents`` what its agent loop does and sends the events it returns (each
method returns the events of that step, already numbered by ``sequence_number``, 0 upwards):

=============================================  ======================================================
step of the run                                 method (events)
=============================================  ======================================================
the run starts                                  ``start()`` (response.created, response.in_progress)
the model streams text                          ``text_delta(text)`` (output_item.added and
                                                content_part.added on the first, output_text.delta)
the model streams a tool call                   ``tool_call_delta(index, call_id=, name=, arguments=)``
                                                (function tools only: output_item.added, then
                                                function_call_arguments.delta; other tools' calls
                                                are shown when they run)
the model's answer is complete                  ``finish_model_call(function_calls)`` (output_text.done,
                                                content_part.done, function_call_arguments.done,
                                                output_item.done)
a finished item (tool listing, approval         ``add_item(item)`` (output_item.added, its progress
request, a function call, a message)            events, output_item.done)
a server tool call starts / ends                ``begin_item(item)`` / ``finish_item(item)``
                                                (mcp_call.in_progress, mcp_call_arguments.*,
                                                mcp_call.completed|failed; file_search_call.*,
                                                web_search_call.*; output_item.added / .done)
the run ends                                    ``complete(usage)``, ``incomplete(reason, usage)``,
                                                ``fail(message, usage=)``
=============================================  ======================================================

``response`` is the response as it stands (``output`` in order of ``output_index``); after the last
step it is the response to return and store. A non-streamed facade drives the same steps and
ignores the events, so both paths build the same response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lamina.apis.responses import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    ContentPartEvent,
    FileSearchCall,
    FunctionCall,
    IncompleteDetails,
    McpApprovalRequest,
    McpCall,
    McpListTools,
    OutputItemEvent,
    OutputMessage,
    OutputText,
    OutputTextDeltaEvent,
    OutputTextDoneEvent,
    ResponseError,
    ResponseLifecycleEvent,
    ResponseObject,
    ToolCallProgressEvent,
    Usage,
    WebSearchCall,
)
from lamina.providers.responses_items import ToolOffer, new_id

Event = Any  # one of lamina.apis.responses.ResponseStreamEvent's members


@dataclass
class _OpenMessage:
    item_id: str
    output_index: int
    text: list[str] = field(default_factory=list)


@dataclass
class _OpenCall:
    item: FunctionCall | None  # None: not a function tool (shown when it runs, not streamed)
    output_index: int = -1
    arguments: list[str] = field(default_factory=list)


class ResponseEvents:
    """Numbers the events of one response and keeps its output in order; see the module docstring."""

    def __init__(self, response: ResponseObject, offer: ToolOffer | None = None) -> None:
        self.response = response.model_copy(update={"status": "in_progress", "output": list(response.output)})
        self._offer = offer
        self._seq = 0
        self._message: _OpenMessage | None = None
        self._calls: dict[int, _OpenCall] = {}
        self._running: dict[str, int] = {}  # server call item id -> output_index
        self.finished = False

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def output(self) -> list[Any]:
        return self.response.output

    def _next(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _lifecycle(self, kind: str) -> ResponseLifecycleEvent:
        # a snapshot: later steps must not change what an event already sent says
        snapshot = self.response.model_copy(update={"output": list(self.output)})
        return ResponseLifecycleEvent(type=kind, response=snapshot, sequence_number=self._next())

    def _item_event(self, kind: str, index: int, item: Any) -> OutputItemEvent:
        return OutputItemEvent(
            type=kind,
            response_id=self.response.id,
            output_index=index,
            item=item,
            sequence_number=self._next(),
        )

    def _progress(self, kind: str, item_id: str, index: int) -> ToolCallProgressEvent:
        return ToolCallProgressEvent(
            type=kind, item_id=item_id, output_index=index, sequence_number=self._next()
        )

    def _append(self, item: Any) -> int:
        self.output.append(item)
        return len(self.output) - 1

    # -- steps -----------------------------------------------------------------------------------

    def start(self) -> list[Event]:
        """response.created and response.in_progress."""
        return [self._lifecycle("response.created"), self._lifecycle("response.in_progress")]

    def text_delta(self, delta: str) -> list[Event]:
        """A piece of the model's text (the first opens the message item and its text part)."""
        events: list[Event] = self._open_message(new_id("msg")) if self._message is None else []
        if delta:
            m = self._message
            m.text.append(delta)
            events.append(
                OutputTextDeltaEvent(
                    item_id=m.item_id,
                    output_index=m.output_index,
                    content_index=0,
                    delta=delta,
                    sequence_number=self._next(),
                )
            )
        return events

    def _open_message(self, item_id: str) -> list[Event]:
        item = OutputMessage(id=item_id, status="in_progress", content=[])
        index = self._append(item)
        self._message = _OpenMessage(item.id, index)
        return [
            self._item_event("response.output_item.added", index, item),
            ContentPartEvent(
                type="response.content_part.added",
                item_id=item.id,
                output_index=index,
                content_index=0,
                part=OutputText(text=""),
                sequence_number=self._next(),
            ),
        ]

    def tool_call_delta(
        self, index: int, *, call_id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> list[Event]:
        """A piece of the model's tool call ``index`` (chat streaming's ``delta.tool_calls[]``)."""
        open_call = self._calls.get(index)
        events: list[Event] = []
        if open_call is None:
            offered = self._offer.by_name.get(name or "") if self._offer is not None else None
            is_function = offered.kind == "function" if offered is not None else self._offer is None
            if not is_function:
                self._calls[index] = _OpenCall(None)
                return []
            item = FunctionCall(
                id=new_id("fc"),
                call_id=call_id or new_id("call"),
                name=name or "",
                arguments="",
                status="in_progress",
            )
            open_call = self._calls[index] = _OpenCall(item, self._append(item))
            events.append(self._item_event("response.output_item.added", open_call.output_index, item))
        if open_call.item is not None and arguments:
            open_call.arguments.append(arguments)
            events.append(
                ArgumentsDeltaEvent(
                    type="response.function_call_arguments.delta",
                    item_id=open_call.item.id,
                    output_index=open_call.output_index,
                    delta=arguments,
                    sequence_number=self._next(),
                )
            )
        return events

    def finish_model_call(self, function_calls: list[FunctionCall] | None = None) -> list[Event]:
        """The model's answer is complete: close its message and streamed function calls.

        ``function_calls`` are the answer's function call items (``ToolCallPlan.function_calls``): a
        streamed one keeps its item id and gets its final arguments; one not streamed is added whole.
        A streamed call not among them (dropped: ``parallel_tool_calls`` false) ends ``incomplete``."""
        events: list[Event] = []
        if self._message is not None:
            events += self._close_message()
        wanted = {f.call_id: f for f in function_calls or []}
        for open_call in self._calls.values():
            if open_call.item is None:
                continue
            final = wanted.pop(open_call.item.call_id, None)
            if final is None:
                item = open_call.item.model_copy(
                    update={"arguments": "".join(open_call.arguments), "status": "incomplete"}
                )
            else:
                item = final.model_copy(update={"id": open_call.item.id, "status": "completed"})
            events.append(
                ArgumentsDoneEvent(
                    type="response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=open_call.output_index,
                    arguments=item.arguments,
                    sequence_number=self._next(),
                )
            )
            self.output[open_call.output_index] = item
            events.append(self._item_event("response.output_item.done", open_call.output_index, item))
        self._calls = {}
        for item in wanted.values():
            events += self.add_item(item)
        return events

    def _close_message(self, *, status: str = "completed") -> list[Event]:
        m = self._message
        assert m is not None
        self._message = None
        text = "".join(m.text)
        part = OutputText(text=text)
        events: list[Event] = [
            OutputTextDoneEvent(
                item_id=m.item_id,
                output_index=m.output_index,
                content_index=0,
                text=text,
                sequence_number=self._next(),
            ),
            ContentPartEvent(
                type="response.content_part.done",
                item_id=m.item_id,
                output_index=m.output_index,
                content_index=0,
                part=part,
                sequence_number=self._next(),
            ),
        ]
        item = OutputMessage(id=m.item_id, status=status, content=[part])
        self.output[m.output_index] = item
        events.append(self._item_event("response.output_item.done", m.output_index, item))
        return events

    def add_item(self, item: Any) -> list[Event]:
        """A finished item, with the events a client expects between its added and done."""
        if isinstance(item, McpCall | FileSearchCall | WebSearchCall):
            return self.begin_item(item) + self.finish_item(item)
        if isinstance(item, OutputMessage):  # a whole text answer (refusals are not streamed)
            if self._message is not None:
                raise ValueError("add_item: a streamed message is open; finish_model_call() first")
            events = self._open_message(item.id)
            events += self.text_delta("".join(p.text for p in item.content if isinstance(p, OutputText)))
            return events + self._close_message()
        index = self._append(item)
        events = [self._item_event("response.output_item.added", index, _in_progress(item))]
        if isinstance(item, McpListTools):
            events.append(self._progress("response.mcp_list_tools.in_progress", item.id, index))
            outcome = "failed" if item.error else "completed"
            events.append(self._progress(f"response.mcp_list_tools.{outcome}", item.id, index))
        elif isinstance(item, FunctionCall):
            events += self._arguments("response.function_call_arguments", item, index)
        elif not isinstance(item, McpApprovalRequest):
            raise TypeError(f"add_item cannot add a {type(item).__name__}")
        events.append(self._item_event("response.output_item.done", index, item))
        return events

    def _arguments(self, prefix: str, item: FunctionCall | McpCall, index: int) -> list[Event]:
        return [
            ArgumentsDeltaEvent(
                type=f"{prefix}.delta",
                item_id=item.id,
                output_index=index,
                delta=item.arguments,
                sequence_number=self._next(),
            ),
            ArgumentsDoneEvent(
                type=f"{prefix}.done",
                item_id=item.id,
                output_index=index,
                arguments=item.arguments,
                sequence_number=self._next(),
            ),
        ]

    def begin_item(self, item: McpCall | FileSearchCall | WebSearchCall) -> list[Event]:
        """A server tool call starts (its item shown in progress until ``finish_item`` with the same id)."""
        running = _in_progress(item)
        index = self._append(running)
        self._running[item.id] = index
        events = [self._item_event("response.output_item.added", index, running)]
        if isinstance(item, McpCall):
            events.append(self._progress("response.mcp_call.in_progress", item.id, index))
            events += self._arguments("response.mcp_call_arguments", item, index)
        else:
            kind = item.type
            events.append(self._progress(f"response.{kind}.in_progress", item.id, index))
            events.append(self._progress(f"response.{kind}.searching", item.id, index))
        return events

    def finish_item(self, item: McpCall | FileSearchCall | WebSearchCall) -> list[Event]:
        """A server tool call ended (``item`` as it ended: output or error, results, status)."""
        index = self._running.pop(item.id, None)
        if index is None:
            raise ValueError(f"finish_item: item {item.id!r} was not begun (call begin_item first)")
        self.output[index] = item
        events: list[Event] = []
        if isinstance(item, McpCall):
            outcome = "failed" if item.error is not None or item.status == "failed" else "completed"
            events.append(self._progress(f"response.mcp_call.{outcome}", item.id, index))
        elif item.status != "failed":  # OpenAI has no failed event for searches: the item says so
            events.append(self._progress(f"response.{item.type}.completed", item.id, index))
        events.append(self._item_event("response.output_item.done", index, item))
        return events

    # -- the end -------------------------------------------------------------------------------

    def _end(
        self, status: Literal["completed", "incomplete", "failed"], usage: Usage | None, **update: Any
    ) -> list[Event]:
        if self.finished:
            raise ValueError(f"the response {self.response.id} already ended ({self.response.status})")
        events: list[Event] = []
        if status == "completed":
            events += self.finish_model_call()
        else:  # whatever is still open stops where it is
            if self._message is not None:
                events += self._close_message(status="incomplete")
            for open_call in self._calls.values():
                if open_call.item is not None:
                    self.output[open_call.output_index] = open_call.item.model_copy(
                        update={"arguments": "".join(open_call.arguments), "status": "incomplete"}
                    )
            self._calls = {}
            for index in self._running.values():
                self.output[index] = self.output[index].model_copy(update={"status": "incomplete"})
            self._running = {}
        self.finished = True
        self.response = self.response.model_copy(update={"status": status, "usage": usage, **update})
        return [*events, self._lifecycle(f"response.{'failed' if status == 'failed' else status}")]

    def complete(self, usage: Usage | None = None) -> list[Event]:
        """The run answered: response.completed (any open message or call closed first)."""
        return self._end("completed", usage)

    def incomplete(
        self, reason: Literal["max_output_tokens", "content_filter"], usage: Usage | None = None
    ) -> list[Event]:
        """The run stopped early (the output token budget ran out): response.incomplete."""
        return self._end("incomplete", usage, incomplete_details=IncompleteDetails(reason=reason))

    def fail(self, message: str, *, code: str = "server_error", usage: Usage | None = None) -> list[Event]:
        """The run failed (the model or a tool's provider): response.failed naming what failed."""
        return self._end("failed", usage, error=ResponseError(code=code, message=message))


def _in_progress(item: Any) -> Any:
    if isinstance(item, McpListTools):
        return item.model_copy(update={"tools": []})
    if isinstance(item, McpCall):
        return item.model_copy(update={"status": "in_progress", "output": None, "error": None})
    if isinstance(item, FileSearchCall):
        return item.model_copy(update={"status": "in_progress", "results": None})
    if isinstance(item, WebSearchCall | FunctionCall):
        return item.model_copy(update={"status": "in_progress"})
    return item
