"""A language-model API stand-in: OpenAI-style ``/v1/chat/completions`` and ``/health``.

No model API can run here; this one answers the chat-completions request and response
shape (``choices[0].message.content``, ``usage``) on 127.0.0.1, and the test can make
its health endpoint or its completions fail, or some completions slow.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LlmStandIn:
    def __init__(self) -> None:
        self.health_status = 200
        self.completion_status = 200
        #: prompts containing a key are answered after that many seconds
        self.slow: dict[str, float] = {}
        self.calls = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/health":
                    ok = stand_in.health_status == 200
                    self._send(stand_in.health_status, {"status": "ok" if ok else "down"})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                stand_in.calls += 1
                if stand_in.completion_status != 200:
                    self._send(stand_in.completion_status, {"error": {"message": "overloaded"}})
                    return
                prompt = request["messages"][-1]["content"]
                delay = max((s for key, s in stand_in.slow.items() if key in prompt), default=0)
                time.sleep(delay)
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{stand_in.calls}",
                        "object": "chat.completion",
                        "model": request.get("model", "stand-in"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "an answer"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": len(prompt.split()),
                            "completion_tokens": 2,
                            "total_tokens": len(prompt.split()) + 2,
                        },
                    },
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
