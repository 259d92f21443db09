"""Vector memory: ingest throughput, recall latency at scale, peak RSS, agentos over raw
chromadb on the same operations, and hit@k on questions over the Python docs.

Measures, in one run:
1. ingest throughput with the real embedder (the packaged all-MiniLM-L6-v2 on the CPU, cold
   cache): ``--ingest-chunks`` chunks of CPython stdlib source through ``Memory.add_chunks``
   (vectors + BM25 index + write lock) vs the same model + a raw ``collection.add``;
2. scale, for each of ``--sizes`` (default 1,000, 10,000 and 100,000 chunks of stdlib source,
   the sources repeated with a copy number when they run out): insert throughput and recall
   latency p50/p95/p99 over ``--queries`` queries, agentos vector-only and hybrid vs raw chromadb
   ``collection.query`` (the same k, the same query embedding function), and peak RSS. The
   embedder here is ``--scale-embedder``: ``hashing`` (default: a feature-hashing bag of words,
   384 dimensions, ~0.1 ms a text, so 100k chunks fit in minutes on 2 cores; the vectors are
   real but weaker than MiniLM's) or ``minilm``. Both sides use the same one, so the ratio is
   the overhead of agentos itself;
3. ``--eval``: the questions of each ``--questions`` file (default: the 20 of
   ``benchmarks/data/memory_questions.json`` and the 22 library-reference ones of
   ``memory_questions_library.json``) over the Python docs (Debian ``python3.11-doc``): with
   ``--eval-corpus full`` (default) every HTML page, as ``agentos memory ingest html/`` would
   take them, less the ``_sources``/``_static``/``_images``/``_downloads`` folders (copies of
   the pages and assets) and the ``genindex*`` pages; with ``subset`` the files the questions
   cite plus the tutorial, FAQ, HOWTO and language-reference folders. Then hit@1/3/5 by source
   file (a question counts at k when one of its first k hits comes from one of its answer
   pages) for vector-only, hybrid, hybrid with MMR (``--diversity``) and lexical-only recall,
   with the latency of each, on embedded Chroma and (``--server``) a ``chroma run`` server this
   script starts on a free port;
4. ``--researcher N`` (with ``--eval``): the Researcher on the local model answers the first N
   questions over the embedded eval memory; status, citation count and files cited.

Prints tables and writes benchmarks/results/memory.json.

    python benchmarks/memory.py [--sizes 1000 10000 100000] [--queries 200] [--ingest-chunks 300]
                                [--eval] [--eval-corpus full|subset] [--questions FILE...]
                                [--server] [--researcher N] [--skip-scale] [--skip-ingest]
                                [--embedding-cache PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from rich.console import Console
from rich.table import Table

from agentos.runtime.memory import CachedEmbedder, Memory, SentenceTransformerEmbedder
from agentos.runtime.memory.chunking import chunk_file, read_sections
from agentos.runtime.memory.ingest import ingest

RESULTS = Path(__file__).parent / "results" / "memory.json"
QUESTIONS = Path(__file__).parent / "data" / "memory_questions.json"
QUESTION_SETS = (QUESTIONS, Path(__file__).parent / "data" / "memory_questions_library.json")
DOCS = Path("/usr/share/doc/python3.11-doc/html")
STDLIB = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
DOC_FOLDERS = ("tutorial", "faq", "howto", "reference")
DOC_EXCLUDE = ("_sources/*", "_static/*", "_images/*", "_downloads/*", "genindex*")
# Which query terms the lexical index keeps (LexicalIndex attributes): the defaults, a tighter
# cut, and every term OR-ed (the index's behaviour before it chose terms).
LEXICAL_VARIANTS = {
    "default": {},
    "tight": {"common_fraction": 0.05, "max_postings": 5_000},
    "all_terms": {"common_fraction": 1.0, "max_terms": 64, "max_postings": 10**12},
}
EVAL_MODES = {  # name: recall keyword arguments (diversity filled in from --diversity)
    "vector": {"mode": "vector"},
    "hybrid": {"mode": "hybrid"},
    "hybrid_mmr": {"mode": "hybrid", "diversity": None},
    "lexical": {"mode": "lexical"},
}
console = Console(width=200)


class HashingEmbedder:
    """Feature hashing of lower-cased words and word pairs into 384 signed buckets, log-scaled
    counts. Deterministic (CRC-32), no model."""

    name = "hashing-384"
    dim = 384

    def embed(self, texts):  # type: ignore[no-untyped-def]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for token in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
                h = zlib.crc32(token.encode())
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        out = np.sign(out) * np.log1p(np.abs(out))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


@contextlib.contextmanager
def lexical_variant(memory: Memory, name: str):  # type: ignore[no-untyped-def]
    """Run the body with the lexical index's term choice set to ``LEXICAL_VARIANTS[name]``."""
    index = memory.lexical
    saved = {k: getattr(index, k) for k in ("common_fraction", "max_terms", "max_postings")}
    for key, value in LEXICAL_VARIANTS[name].items():
        setattr(index, key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(index, key, value)


def with_variant(memory: Memory, name: str, fn):  # type: ignore[no-untyped-def]
    def run(q):  # type: ignore[no-untyped-def]
        with lexical_variant(memory, name):
            return fn(q)
    return run


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stdlib_chunks(n: int) -> list[tuple[str, str, int]]:
    """``n`` (source, text, position) chunks of stdlib source, repeated with a copy tag if the
    stdlib has fewer."""
    base: list[tuple[str, str, int]] = []
    for path in sorted(STDLIB.glob("*.py")) + sorted(STDLIB.glob("*/*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        try:
            for chunk in chunk_file(path):
                base.append((str(path), chunk.text, chunk.position))
        except Exception:  # unparsable files (lib2to3 fixtures, ...) are left out
            continue
        if len(base) >= n:
            break
    out = list(base[:n])
    copy = 1
    while len(out) < n:
        out += [(f"{s}#copy{copy}", f"{t}\n# copy {copy}", p) for s, t, p in base[: n - len(out)]]
        copy += 1
    return out


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    index = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
    return values[index]


def raw_client(path: Path):  # type: ignore[no-untyped-def]
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def raw_collection(client):  # type: ignore[no-untyped-def]
    return client.get_or_create_collection("raw-bench", embedding_function=None,
                                           configuration={"hnsw": {"space": "cosine"}})


# --- 1. ingest throughput with MiniLM ---------------------------------------------------------


def bench_ingest(n: int, work: Path) -> dict:
    chunks = stdlib_chunks(n)
    texts = [t for _, t, _ in chunks]
    model = SentenceTransformerEmbedder()
    model.embed(["warm up"])  # load the model outside the timing
    # raw: the same model, then collection.add
    collection = raw_collection(raw_client(work / "raw-ingest"))
    start = time.perf_counter()
    for i in range(0, n, 256):
        vectors = model.embed(texts[i:i + 256])
        collection.add(ids=[f"r{j}" for j in range(i, i + len(vectors))], embeddings=vectors,
                       documents=texts[i:i + 256],
                       metadatas=[{"source": s, "position": p} for s, _, p in chunks[i:i + 256]])
    raw_s = time.perf_counter() - start
    memory = Memory(work / "agentos-ingest", embedder=CachedEmbedder(model, work / "cold.sqlite"))
    start = time.perf_counter()
    for i in range(0, n, 256):
        part = chunks[i:i + 256]
        memory.add_chunks("global", [f"c{j}" for j in range(i, i + len(part))],
                          [t for _, t, _ in part], [{"source": s, "position": p} for s, _, p in part])
    agentos_s = time.perf_counter() - start
    memory.close()
    return {"chunks": n, "embedder": model.name, "raw_chunks_per_s": n / raw_s,
            "agentos_chunks_per_s": n / agentos_s, "overhead": agentos_s / raw_s - 1}


# --- 2. scale ---------------------------------------------------------------------------------


def bench_scale(size: int, queries: int, work: Path, embedder) -> dict:  # type: ignore[no-untyped-def]
    chunks = stdlib_chunks(size)
    texts = [t for _, t, _ in chunks]
    metas = [{"source": s, "position": p} for s, _, p in chunks]
    start = time.perf_counter()
    vectors = embedder.embed(texts)
    embed_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    picks = rng.choice(size, size=queries, replace=False if queries <= size else True)
    qs = [" ".join(re.findall(r"\w+", texts[i])[:12]) or "def" for i in picks]

    collection = raw_collection(raw_client(work / f"raw-{size}"))
    start = time.perf_counter()
    for i in range(0, size, 1000):
        collection.add(ids=[f"r{j}" for j in range(i, min(i + 1000, size))],
                       embeddings=vectors[i:i + 1000], documents=texts[i:i + 1000],
                       metadatas=metas[i:i + 1000])
    raw_insert = time.perf_counter() - start

    # agentos: same vectors (the cache is pre-filled, so add_chunks embeds nothing new)
    cached = CachedEmbedder(embedder, None)
    cached._memo.update({CachedEmbedder.key(t): v for t, v in zip(texts, vectors)})  # noqa: SLF001
    memory = Memory(work / f"agentos-{size}", embedder=cached)
    start = time.perf_counter()
    for i in range(0, size, 1000):
        memory.add_chunks("global", [f"c{j}" for j in range(i, min(i + 1000, size))],
                          texts[i:i + 1000], metas[i:i + 1000], batch_size=1000)
    agentos_insert = time.perf_counter() - start
    cached._memo.clear()  # noqa: SLF001  queries embed for real on both sides

    raw_query = lambda q: collection.query(query_embeddings=embedder.embed([q]), n_results=5,  # noqa: E731
                                           include=["documents", "metadatas", "distances"])
    ops = {
        "raw_vector": raw_query,
        "agentos_vector": lambda q: memory.recall("global", q, k=5, mode="vector"),
        "agentos_hybrid": lambda q: memory.recall("global", q, k=5),
        "agentos_hybrid_tight": with_variant(memory, "tight",
                                             lambda q: memory.recall("global", q, k=5)),
        "agentos_hybrid_all_terms": with_variant(memory, "all_terms",
                                                 lambda q: memory.recall("global", q, k=5)),
    }
    lat: dict[str, list[float]] = {name: [] for name in ops}
    for q in qs[:20]:  # warm-up, not kept
        for fn in ops.values():
            fn(q)
    for q in qs:  # each query through every op back to back, so load drifts hit all alike
        for name, fn in ops.items():
            t = time.perf_counter()
            fn(q)
            lat[name].append(time.perf_counter() - t)
    memory.close()
    row = {"size": size, "embedder": embedder.name, "embed_s": embed_s,
           "raw_insert_chunks_per_s": size / raw_insert,
           "agentos_insert_chunks_per_s": size / agentos_insert,
           "peak_rss_mib": peak_rss_mib()}
    for name, values in lat.items():
        for q in (50, 95, 99):
            row[f"{name}_p{q}_ms"] = percentile(values, q) * 1e3
    row["vector_overhead_p50"] = row["agentos_vector_p50_ms"] / row["raw_vector_p50_ms"] - 1
    return row


# --- 3. recall@5 on the Python docs -----------------------------------------------------------


def eval_corpus(questions: list[dict], corpus: str) -> list[Path]:
    """The files the eval ingests: ``full`` (every page, less copies, assets and the general
    index), ``sections`` (the library, tutorial, FAQ, HOWTO and language-reference folders)
    or ``subset``."""
    if corpus == "full":
        return [DOCS]
    if corpus == "sections":
        return [DOCS / folder for folder in ("library", *DOC_FOLDERS)]
    files = {DOCS / s for q in questions for s in q["sources"]}
    for folder in DOC_FOLDERS:
        files |= set((DOCS / folder).glob("*.html"))
    return sorted(files)


def check_passages(questions: list[dict]) -> None:
    for q in questions:
        text = " ".join(" ".join(s.title + " " + s.text for s in read_sections(DOCS / q["sources"][0])).split())
        if " ".join(q["passage"].split()) not in text:
            raise SystemExit(f"passage not found in {q['sources'][0]}: {q['passage']!r}")


def start_chroma(work: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    proc = subprocess.Popen([binary, "run", "--path", str(work / "server"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("chroma run did not start")


def score_set(memory: Memory, questions: list[dict], diversity: float) -> dict:
    """hit@1/3/5 by source file and recall latency, per mode, for one question set."""
    root = DOCS.resolve()
    out: dict = {}
    for mode, kwargs in EVAL_MODES.items():
        kwargs = {**kwargs, **({"diversity": diversity} if "diversity" in kwargs else {})}
        per_question, seconds = [], []
        for q in questions:
            start = time.perf_counter()
            hits = memory.recall("global", q["question"], k=5, **kwargs)
            seconds.append(time.perf_counter() - start)
            got = [str(Path(h.source).relative_to(root)) for h in hits if h.source]
            first = next((i + 1 for i, g in enumerate(got) if g in q["sources"]), None)
            per_question.append({"question": q["question"], "sources": q["sources"],
                                 "first_hit_rank": first, "top5": got})
        out[mode] = {f"hit_at_{k}": sum(1 for p in per_question
                                        if p["first_hit_rank"] and p["first_hit_rank"] <= k)
                     for k in (1, 3, 5)}
        out[mode].update(recall_kwargs=kwargs, latency_p50_ms=percentile(seconds, 50) * 1e3,
                         latency_p95_ms=percentile(seconds, 95) * 1e3, per_question=per_question)
    return out


def bench_eval(work: Path, backend_names: list[str], cache: Path | None, corpus: str,
               question_files: list[Path], diversity: float,
               save: Callable[[dict], None] = lambda out: None) -> dict:
    """Ingest and score on each backend in turn; ``save(out)`` after each one, so a run cut
    short keeps what it finished."""
    sets = {}
    for path in question_files:
        data = json.loads(path.read_text())
        check_passages(data["questions"])
        sets[path.stem] = data["questions"]
    every = [q for qs in sets.values() for q in qs]
    paths = eval_corpus(every, corpus)
    embedder = CachedEmbedder(SentenceTransformerEmbedder(), cache or work / "eval-cache.sqlite")
    backends: list[tuple[str, str | None]] = []
    proc = None
    if "embedded" in backend_names:
        backends.append(("embedded", None))
    if "server" in backend_names:
        proc, url = start_chroma(work)
        backends.append(("server", url))
    out: dict = {"corpus": corpus, "exclude": list(DOC_EXCLUDE) if corpus != "subset" else [],
                 "question_sets": {name: len(qs) for name, qs in sets.items()},
                 "diversity": diversity, "backends": {}}
    try:
        for backend, url in backends:
            memory = Memory(work / f"eval-{backend}", url=url, embedder=embedder)
            report = ingest(memory, paths, "global",
                            exclude=DOC_EXCLUDE if corpus != "subset" else (),
                            progress=lambda p, d, t: console.print(f"  [{backend}] {d}/{t} {p.name}", end="\r"))
            console.print()
            result = {"files": report.added + report.replaced + report.unchanged,
                      "skipped": report.skipped, "chunks": memory.count("global"),
                      "ingest_s": report.seconds,
                      "sets": {name: score_set(memory, qs, diversity) for name, qs in sets.items()}}
            if backend == "embedded":  # the lexical term choice, on the same memory
                result["lexical_variants"] = {}
                for variant in LEXICAL_VARIANTS:
                    with lexical_variant(memory, variant):
                        result["lexical_variants"][variant] = {
                            name: {mode: {k: v for k, v in m.items() if k != "per_question"}
                                   for mode, m in score_set(memory, qs, diversity).items()
                                   if mode != "vector"}
                            for name, qs in sets.items()}
            out["backends"][backend] = result
            memory.close()
            save(out)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    return out


def bench_researcher(work: Path, n: int, model: str) -> list[dict]:
    """The Researcher on the first ``n`` questions over the embedded eval memory."""
    from agentos.agents import Researcher
    from agentos.config import load_settings
    from agentos.runtime.kernel import Kernel

    memory = Memory(work / "eval-embedded", embedder=CachedEmbedder(SentenceTransformerEmbedder(), None))
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(work)}), store=work / "runs.sqlite",
                    memory=memory)
    rows = []
    for q in json.loads(QUESTIONS.read_text())["questions"][:n]:
        researcher = Researcher("researcher", llm=model, kernel=kernel, namespaces=["global"],
                                max_subquestions=0, k=3, max_sources=3, max_attempts=3,
                                llm_params={"max_tokens": 400, "temperature": 0})
        start = time.perf_counter()
        report = researcher.run(q["question"])
        rows.append({"question": q["question"], "status": report.status,
                     "citations": len(report.citations),
                     "cited_files": sorted({str(Path(c.source).name) for c in report.citations if c.source}),
                     "expected": q["sources"], "answers": len(report.steps),
                     "seconds": time.perf_counter() - start, "answer": report.answer,
                     "error": report.error})
        console.print(f"  researcher: {report.status} ({len(report.citations)} citations) {q['question']}")
    memory.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ingest-chunks", type=int, default=300)
    parser.add_argument("--scale-embedder", choices=["hashing", "minilm"], default="hashing")
    parser.add_argument("--skip-scale", action="store_true", help="only the ingest and eval parts")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--eval", action="store_true", help="hit@k on the Python-docs questions")
    parser.add_argument("--eval-corpus", choices=["full", "sections", "subset"], default="full")
    parser.add_argument("--questions", type=Path, nargs="+", default=list(QUESTION_SETS))
    parser.add_argument("--diversity", type=float, default=0.3, help="MMR's, for hybrid_mmr")
    parser.add_argument("--server", action="store_true", help="also evaluate on a Chroma server")
    parser.add_argument("--server-only", action="store_true",
                        help="evaluate on a Chroma server only (not the embedded store)")
    parser.add_argument("--embedding-cache", type=Path, help="embedding cache for --eval (reused)")
    parser.add_argument("--researcher", type=int, default=0, metavar="N",
                        help="with --eval: run the Researcher on the first N questions")
    parser.add_argument("--model", default="local/qwen2.5-coder-1.5b", help="for --researcher")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.out.is_dir():
        args.out = args.out / RESULTS.name

    from agentos.runtime.memory import _lexical

    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "load_avg_start": os.getloadavg()[0]},
                     "lexical_defaults": {"common_fraction": _lexical.COMMON_FRACTION,
                                          "max_terms": _lexical.MAX_TERMS,
                                          "max_postings": _lexical.MAX_POSTINGS}}
    with tempfile.TemporaryDirectory(prefix="agentos-membench-") as tmp:
        work = Path(tmp)
        if not args.skip_ingest:
            row = bench_ingest(args.ingest_chunks, work)
            results["ingest"] = row
            table = Table("embedder", "chunks", "raw chromadb chunks/s", "agentos chunks/s", "overhead",
                          title="Ingest throughput (embed + write, cold cache)")
            table.add_row(row["embedder"], str(row["chunks"]), f"{row['raw_chunks_per_s']:.1f}",
                          f"{row['agentos_chunks_per_s']:.1f}", f"{row['overhead'] * 100:+.1f} %")
            console.print(table)
        if not args.skip_scale:
            embedder = HashingEmbedder() if args.scale_embedder == "hashing" else SentenceTransformerEmbedder()
            results["scale"] = []
            table = Table("chunks", "insert chunks/s raw / agentos", "raw vector p50 / p95 / p99 ms",
                          "agentos vector p50 / p95 / p99 ms", "agentos hybrid p50 / p95 / p99 ms",
                          "hybrid, tight / all terms p50 ms",
                          "vector overhead (p50)", "peak RSS MiB",
                          title=f"Scale (embedder: {embedder.name}; k=5, {args.queries} queries)")
            for size in args.sizes:
                row = bench_scale(size, args.queries, work, embedder)
                results["scale"].append(row)
                table.add_row(
                    f"{size:,}",
                    f"{row['raw_insert_chunks_per_s']:.0f} / {row['agentos_insert_chunks_per_s']:.0f}",
                    f"{row['raw_vector_p50_ms']:.2f} / {row['raw_vector_p95_ms']:.2f} / "
                    f"{row['raw_vector_p99_ms']:.2f}",
                    f"{row['agentos_vector_p50_ms']:.2f} / {row['agentos_vector_p95_ms']:.2f} / "
                    f"{row['agentos_vector_p99_ms']:.2f}",
                    f"{row['agentos_hybrid_p50_ms']:.2f} / {row['agentos_hybrid_p95_ms']:.2f} / "
                    f"{row['agentos_hybrid_p99_ms']:.2f}",
                    f"{row['agentos_hybrid_tight_p50_ms']:.2f} / "
                    f"{row['agentos_hybrid_all_terms_p50_ms']:.2f}",
                    f"{row['vector_overhead_p50'] * 100:+.1f} %", f"{row['peak_rss_mib']:.0f}",
                )
                console.print(f"  {size:,} chunks done")
            console.print(table)
        if args.eval:
            def save(partial: dict) -> None:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({**results, "eval": partial}, indent=2))

            names = ["server"] if args.server_only else ["embedded", *(["server"] if args.server else [])]
            ev = bench_eval(work, names, args.embedding_cache, args.eval_corpus,
                            args.questions, args.diversity, save)
            results["eval"] = ev
            for backend, r in ev["backends"].items():
                for name, scored in r["sets"].items():
                    n = ev["question_sets"][name]
                    table = Table("mode", "hit@1", "hit@3", "hit@5", "p50 ms", "p95 ms",
                                  title=f"{backend}: {name} ({n} questions) over {r['files']} "
                                        f"files, {r['chunks']:,} chunks")
                    for mode, m in scored.items():
                        table.add_row(mode, *(f"{m[f'hit_at_{k}']}/{n}" for k in (1, 3, 5)),
                                      f"{m['latency_p50_ms']:.1f}", f"{m['latency_p95_ms']:.1f}")
                    console.print(table)
                    if "lexical_variants" in r:
                        table = Table("lexical terms", "mode", "hit@1", "hit@3", "hit@5", "p50 ms",
                                      title=f"{backend}: {name}, lexical term choice")
                        for variant, by_set in r["lexical_variants"].items():
                            for mode, m in by_set[name].items():
                                table.add_row(variant, mode,
                                              *(f"{m[f'hit_at_{k}']}/{n}" for k in (1, 3, 5)),
                                              f"{m['latency_p50_ms']:.1f}")
                        console.print(table)
                    for mode, m in scored.items():
                        for p in m["per_question"]:
                            if not p["first_hit_rank"]:
                                console.print(f"  miss \\[{backend}/{mode}] {p['question']} -> {p['top5'][:3]}")
        if args.eval and args.researcher:
            rows = bench_researcher(work, args.researcher, args.model)
            results["researcher"] = {"model": args.model, "questions": rows}
            table = Table("question", "status", "citations (all verified when succeeded)",
                          "cited files", "answers", "seconds", title=f"Researcher on {args.model}")
            for r in rows:
                table.add_row(r["question"], r["status"], str(r["citations"]),
                              ", ".join(r["cited_files"]), str(r["answers"]), f"{r['seconds']:.0f}")
            console.print(table)
    results["machine"]["load_avg_end"] = os.getloadavg()[0]
    results["peak_rss_mib"] = peak_rss_mib()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
