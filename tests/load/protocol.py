"""A student without a browser: Streamlit's own WebSocket protocol, spoken from Python.

The page in a browser talks to the server in protobuf messages over one WebSocket: a `BackMsg` asks for a run of
the script (with the widget values that changed), and `ForwardMsg`s come back with the page's elements, the end
of each run, and the fragments that want to be rerun on a timer (which the browser, not the server, then asks
for). `Client` does the same, so K students cost this machine what the server does for them, and almost nothing
for drawing: the load figures then say what a classroom server does, while each student's own machine draws their
page.

Only what the load test needs: widgets are found by their label as the server sends them, a changed value is sent
alone (the server keeps every other widget's value from the run before, as it does for the browser's unchanged
ones), and a fragment's timer is honoured until the server stops it or a run of the whole page begins. Because a
change is sent alone, a request sent before the previous one's run has finished would undo that one's change
(a browser sends every value each time): `run` waits for the end of its run, as the load test needs.
"""

from __future__ import annotations

import asyncio

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

WHOLE_RUN_ENDS = {"FINISHED_SUCCESSFULLY", "FINISHED_WITH_COMPILE_ERROR"}  # not a fragment's, not one cut short


class ScriptFailed(RuntimeError):
    pass


class Client:
    """One session of the app at ``url`` (http://host:port), opened with ``query`` as the page's query string, from
    the local address ``source`` if given (a loopback address such as 127.0.3.1: nginx's ip_hash then treats each
    client as another student's machine)."""

    def __init__(self, url: str, query: str = "", source: str | None = None):
        self.ws_url = url.replace("http", "ws", 1).rstrip("/") + "/_stcore/stream"
        self.query = query
        self.source = source
        self.widgets: dict[str, str] = {}  # label -> widget id, as last sent by the server
        self.payloads: list[bytes] = []  # every ForwardMsg received, serialised, in order
        self.exceptions: list[str] = []  # tracebacks the page would show
        self._finished = asyncio.Event()
        self._timers: dict[str, tuple[float, asyncio.Task]] = {}  # fragment id -> (interval, its rerun loop)
        self._ws = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> "Client":
        self._ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=60,
                                            ping_interval=None, local_addr=(self.source, 0) if self.source else None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop_timers(list(self._timers))
        if self._reader is not None:
            self._reader.cancel()
        await self._ws.close()

    async def rerun(self, *states: WidgetState, fragment_id: str = "", auto: bool = False) -> None:
        message = BackMsg()
        client = message.rerun_script
        client.query_string = self.query
        client.widget_states.widgets.extend(states)
        if fragment_id:
            client.fragment_id = fragment_id
            client.is_auto_rerun = auto
        await self._ws.send(message.SerializeToString())

    async def run(self, *states: WidgetState, timeout: float = 300) -> None:
        """Ask for a run of the whole script with ``states`` changed and wait until it has finished."""
        self._finished.clear()
        await self.rerun(*states)
        await asyncio.wait_for(self._finished.wait(), timeout)
        if self.exceptions:
            raise ScriptFailed(self.exceptions[0])

    async def wait_for(self, found, timeout: float = 300) -> None:
        """Wait until ``found(payload)`` is true of a ForwardMsg this session has received, earlier ones included."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for payload in self.payloads[seen:]:
                    if found(payload):
                        return
                seen = len(self.payloads)
                await asyncio.sleep(0.05)

    def widget(self, label: str) -> str:
        try:
            return self.widgets[label]
        except KeyError:
            raise LookupError(f"no widget labelled {label!r} on the page (it has {sorted(self.widgets)})") from None

    def choose(self, label: str, option: str) -> WidgetState:
        return WidgetState(id=self.widget(label), string_value=option)

    def switch(self, label: str, on: bool) -> WidgetState:
        return WidgetState(id=self.widget(label), bool_value=on)

    def press(self, label: str) -> WidgetState:
        return WidgetState(id=self.widget(label), trigger_value=True)

    async def _read(self) -> None:
        async for raw in self._ws:
            message = ForwardMsg()
            message.ParseFromString(raw)
            self.payloads.append(raw)
            kind = message.WhichOneof("type")
            if kind == "new_session" and not message.metadata.run.fragment_ids:
                self._stop_timers(list(self._timers))  # a run of the whole page: the browser drops its timers too
            elif kind == "delta":
                self._note_delta(message.delta)
            elif kind == "auto_rerun":
                self._start_timer(message.auto_rerun.fragment_id, message.auto_rerun.interval)
            elif kind == "stop_auto_rerun":
                self._stop_timers(message.stop_auto_rerun.fragment_ids)
            elif kind == "script_finished":
                status = ForwardMsg.ScriptFinishedStatus.Name(message.script_finished)
                if status == "FINISHED_WITH_COMPILE_ERROR":
                    self.exceptions.append("the script did not compile")
                if status in WHOLE_RUN_ENDS:
                    self._finished.set()

    def _note_delta(self, delta) -> None:
        part = delta.WhichOneof("type")
        if part == "new_element":
            kind = delta.new_element.WhichOneof("type")
            element = getattr(delta.new_element, kind)
            if kind == "exception":
                self.exceptions.append(f"{element.type}: {element.message}")
            elif getattr(element, "id", "") and getattr(element, "label", ""):
                self.widgets[element.label] = element.id
        elif part == "add_block" and delta.add_block.WhichOneof("type") == "tab_container":
            self.widgets["tabs"] = delta.add_block.tab_container.id

    def _stop_timers(self, fragment_ids) -> None:
        for fragment_id in fragment_ids:
            _, task = self._timers.pop(fragment_id, (None, None))
            if task is not None:
                task.cancel()

    def _start_timer(self, fragment_id: str, interval: float) -> None:
        if self._timers.get(fragment_id, (None,))[0] == interval:
            return  # as the browser does: the timer already running keeps its phase
        self._stop_timers([fragment_id])

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval)
                await self.rerun(fragment_id=fragment_id, auto=True)

        self._timers[fragment_id] = (interval, asyncio.create_task(tick()))
