"""Tool selection: send the model only the tools a request needs.

With hundreds of tools installed, sending every schema on every call costs tokens and confuses
models. `ToolSelector` ranks tools for a request two ways, by keywords (BM25 over the tool's name
split into words, its description, its parameters) and by meaning (cosine similarity of sentence
embeddings of the description), and fuses the two rankings by reciprocal rank fusion, for the
whole request and for each of its sentences, so that a request asking for several things gets a
tool for each. Tools matched by the `always` globs are added on top of the k chosen.

    selector = ToolSelector(agent.tools, home=config.home)   # embeddings cached under home
    tools = selector.select("Will it rain in Lyon tomorrow?", k=5, always=["calculator.*"])

The keyword side is standard library only; numpy and the embedding model load on the first
selection that needs them (or on `load()`). Tool embeddings are cached by a hash of the embedder's
id and the text embedded, in memory for the process and, given a home, in SQLite, so a selector
over the same tools starts without embedding anything the second time.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import sqlite3
import threading
from contextlib import closing
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal

from ..tools import Tool
from ..words import STOPWORDS, stem, words

if TYPE_CHECKING:
    import numpy as np

    from ..embedding import Embedder

Mode = Literal["hybrid", "keyword", "embedding"]

# Tuned on a quarter of BFCL `multiple` + `parallel_multiple` (bench/tool_selection.py --tune).
RRF_K = 10  # small: the top few ranks of either list count for much more than the rest
KEYWORD_WEIGHT = 0.75
EMBEDDING_WEIGHT = 1.0
# BM25 field weights: a word in the tool's name says more about what it does than one in a
# parameter's description.
NAME_WEIGHT = 3.0
DESCRIPTION_WEIGHT = 1.0
PARAMETER_WEIGHT = 0.5
BM25_K1, BM25_B = 1.2, 0.75


# ---- text ---------------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_IDENTIFIER = re.compile(r"\w[_.]\w|[a-z][A-Z]")


def name_words(name: str) -> str:
    """`math.factorial` -> 'math factorial', `getWeatherForecast` / `get_weather_forecast` ->
    'get weather forecast', `HTTPRequest2` -> 'http request2'."""
    return " ".join(_CAMEL.sub(" ", part).lower() for part in re.split(r"[\W_]+", name) if part)


def _parameters(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, description + allowed values) of each parameter, nested objects included."""
    found = []
    for pname, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        about = [str(prop.get("description") or "")]
        if isinstance(prop.get("enum"), list):
            about.append(" ".join(str(v) for v in prop["enum"]))
        found.append((pname, " ".join(a for a in about if a)))
        for nested in (prop, prop.get("items")):
            if isinstance(nested, dict) and nested.get("properties"):
                found.extend(_parameters(nested))
    return found


def embedding_text(tool: Tool) -> str:
    """What the embedder reads for a tool: its description, else its name in words. The keyword
    side already weighs the name and parameters; the description's meaning is what it adds (and
    on BFCL, adding the name or parameter names to it made the fused ranking no better)."""
    return " ".join(tool.description.split()) or name_words(tool.name) or tool.name


def terms(text: str) -> list[str]:
    """Stemmed content words; identifiers (`snake_case`, `camelCase`, `a.b`) are split into words."""
    split = " ".join(name_words(token) if _IDENTIFIER.search(token) else token for token in text.split())
    return [stem(w) for w in words(split) if w not in STOPWORDS and len(w) > 1]


# Where a request moves on to its next ask: a sentence end, or words such as "then" and "also".
_CLAUSE = re.compile(r"(?<=[.?!;])\s+|\s*(?:,\s*)?\b(?:and then|then|also|and finally|finally|lastly|secondly|"
                     r"additionally)\b[,:]?\s*", re.I)


def query_parts(query: str) -> list[str]:
    """The whole request, then each of its sentences and clauses when it has several: a request
    that asks for several things ranks the tools for each."""
    pieces = [p.strip() for p in _CLAUSE.split(query) if p and terms(p)]
    return [query, *pieces] if len(pieces) > 1 else [query]


def _weighted_terms(tool: Tool) -> dict[str, float]:
    weights: dict[str, float] = {}
    fields = [(name_words(tool.name), NAME_WEIGHT), (tool.description or "", DESCRIPTION_WEIGHT)]
    for pname, about in _parameters(tool.parameters):
        fields += [(name_words(pname), PARAMETER_WEIGHT), (about, PARAMETER_WEIGHT)]
    for text, weight in fields:
        for term in terms(text):
            weights[term] = weights.get(term, 0.0) + weight
    return weights


# ---- keyword ranking ----------------------------------------------------------------------------


class _BM25:
    """Okapi BM25 with per-field term weights (a weighted term frequency, as in BM25F)."""

    def __init__(self, documents: list[dict[str, float]]):
        self.lengths = [sum(d.values()) for d in documents]
        self.average = (sum(self.lengths) / len(documents)) if documents else 0.0
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for i, document in enumerate(documents):
            for term, tf in document.items():
                self.postings.setdefault(term, []).append((i, tf))
        n = len(documents)
        self.idf = {t: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self.postings.items()}

    def scores(self, query: Iterable[str]) -> dict[int, float]:
        scores: dict[int, float] = {}
        for term in set(query):
            for i, tf in self.postings.get(term, ()):
                norm = BM25_K1 * (1 - BM25_B + BM25_B * self.lengths[i] / (self.average or 1))
                scores[i] = scores.get(i, 0.0) + self.idf[term] * tf * (BM25_K1 + 1) / (tf + norm)
        return scores


# ---- embedding cache ----------------------------------------------------------------------------

_memory: dict[str, bytes] = {}  # shared by every selector in the process
_memory_lock = threading.Lock()


class _VectorCache:
    """float32 vectors by key: in memory, and in SQLite under `home` when one is given."""

    def __init__(self, home: str | Path | None):
        self.path = Path(home) / "cache" / "tool-embeddings.db" if home else None

    def get(self, keys: list[str]) -> dict[str, bytes]:
        found = self._read(keys) if self.path and self.path.exists() else {}
        with _memory_lock:
            _memory.update(found)
            only_in_memory = {k: _memory[k] for k in keys if k not in found and k in _memory}
        if only_in_memory:  # embedded earlier in this process for another home, or none
            self.put(only_in_memory)
        return {**found, **only_in_memory}

    def put(self, vectors: dict[str, bytes]) -> None:
        with _memory_lock:
            _memory.update(vectors)
        if self.path and vectors:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._write(vectors)
            except sqlite3.OperationalError:
                pass  # locked or read-only: the cache is an optimisation, the vectors are in memory
            except sqlite3.DatabaseError:
                self.path.unlink(missing_ok=True)  # not a database we can use: start it afresh
                self._write(vectors)

    def _read(self, keys: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        try:
            with closing(self._connect()) as db:
                for start in range(0, len(keys), 500):
                    batch = keys[start : start + 500]
                    marks = ",".join("?" * len(batch))
                    found.update(db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", batch))
        except sqlite3.DatabaseError:
            pass  # a damaged cache only costs the time to embed again (put() replaces it)
        return found

    def _write(self, vectors: dict[str, bytes]) -> None:
        with closing(self._connect()) as db, db:
            db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", vectors.items())

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        return db


def _key(embedder_id: str, text: str) -> str:
    return hashlib.sha256(f"{embedder_id}\n{text}".encode()).hexdigest()


# ---- the selector -------------------------------------------------------------------------------


class ToolSelector:
    """Picks the tools relevant to a request among many.

    `embedder`: anything with `id` and `embed(texts) -> L2-normalised rows` (default: the local
    all-MiniLM-L6-v2, shared by the process). `home`: where the embedding cache lives (PLUGDECK_HOME);
    without one, embeddings are cached in memory for the process only.
    """

    def __init__(self, tools: Iterable[Tool], *, embedder: Embedder | None = None, home: str | Path | None = None,
                 rrf_k: float = RRF_K, keyword_weight: float = KEYWORD_WEIGHT,
                 embedding_weight: float = EMBEDDING_WEIGHT):
        self.tools = list(tools)
        self.rrf_k = rrf_k
        self.keyword_weight = keyword_weight
        self.embedding_weight = embedding_weight
        self._embedder = embedder
        self._cache = _VectorCache(home)
        self._keywords = _BM25([_weighted_terms(t) for t in self.tools])
        self._vectors: np.ndarray | None = None
        self._load_lock = threading.Lock()
        # After load(): how many tool vectors came from the cache and how many were computed.
        self.stats = {"tools": len(self.tools), "from_cache": 0, "embedded": 0}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from ..embedding import LocalEmbedder

            self._embedder = LocalEmbedder()
        return self._embedder

    def load(self) -> None:
        """Embed the tools now (from the cache where possible), rather than on the first selection."""
        with self._load_lock:
            if self._vectors is not None:
                return
            import numpy as np

            embedder_id = getattr(self.embedder, "id", type(self.embedder).__qualname__)
            texts = [embedding_text(t) for t in self.tools]
            keys = [_key(embedder_id, text) for text in texts]
            cached = self._cache.get(list(dict.fromkeys(keys)))
            todo = list(dict.fromkeys(text for text, key in zip(texts, keys) if key not in cached))
            self.stats.update(from_cache=sum(key in cached for key in keys), embedded=len(todo))
            if todo:
                fresh = self.embedder.embed(todo)
                computed = {_key(embedder_id, text): np.asarray(row, dtype=np.float32).tobytes()
                            for text, row in zip(todo, fresh)}
                self._cache.put(computed)
                cached = {**cached, **computed}
            rows = [np.frombuffer(cached[key], dtype=np.float32) for key in keys]
            dimension = len(rows[0]) if rows else 0
            self._vectors = np.vstack(rows) if rows else np.zeros((0, dimension), dtype=np.float32)

    def rank(self, query: str, mode: Mode = "hybrid") -> list[tuple[Tool, float]]:
        """Tools for the query, best first, with a score of which only the order means something.

        `keyword`: BM25 over the whole request (tools that share no word with it are left out);
        `embedding`: cosine similarity to the whole request; `hybrid`: for the request and each of
        its clauses, the two rankings fused by weighted reciprocal rank fusion, and each tool
        keeps its best clause, so a request that asks for three things finds a tool for each.
        """
        if mode not in ("hybrid", "keyword", "embedding"):
            raise ValueError(f"mode must be 'hybrid', 'keyword' or 'embedding', not {mode!r}")
        if not self.tools:
            return []
        if mode == "keyword":
            scores = self._keywords.scores(terms(query))
            return [(self.tools[i], scores[i]) for i in sorted(scores, key=lambda i: (-scores[i], i))]
        import numpy as np

        self.load()
        parts = query_parts(query) if mode == "hybrid" else [query]
        if len(parts) > 1:
            # The request's own vector is the mean of its clauses' (as good on BFCL, half the work).
            clauses = self.embedder.embed(parts[1:])
            whole = clauses.mean(axis=0)
            vectors = np.vstack([whole / (np.linalg.norm(whole) or 1.0), clauses])
        else:
            vectors = self.embedder.embed(parts)
        similarity = self._vectors @ vectors.T  # tools x parts
        if mode == "embedding":
            return self._ordered(similarity[:, 0])
        reciprocal = 1.0 / (self.rrf_k + 1 + np.arange(len(self.tools)))
        best = np.zeros(len(self.tools))
        for j, part in enumerate(parts):
            fused = np.zeros(len(self.tools))
            fused[np.argsort(-similarity[:, j], kind="stable")] = self.embedding_weight * reciprocal
            keyword = self._keywords.scores(terms(part))
            for r, i in enumerate(sorted(keyword, key=lambda i: (-keyword[i], i))):
                fused[i] += self.keyword_weight * reciprocal[r]
            np.maximum(best, fused, out=best)
        return self._ordered(best)

    def _ordered(self, scores) -> list[tuple[Tool, float]]:
        import numpy as np

        order = np.lexsort((np.arange(len(scores)), -scores))  # ties keep the tools' order
        return [(self.tools[i], float(scores[i])) for i in order]

    def select(self, query: str, k: int, always: Iterable[str] = (), mode: Mode = "hybrid") -> list[Tool]:
        """The always-on tools (qualified-name globs, such as `calculator.*`), then the k best others.

        Blocking: once loaded, the request's sentences are embedded (on 2 CPU cores, about 15-25 ms
        for a one-sentence request, 75-100 ms for one of five sentences); in async code, use `aselect`.
        """
        if k < 0:
            raise ValueError(f"k must be 0 or more, not {k}")
        globs = list(always)
        pinned = [t for t in self.tools if any(fnmatchcase(t.qualified_name, g) for g in globs)]
        pinned_ids = {id(t) for t in pinned}
        chosen = [t for t, _ in self.rank(query, mode) if id(t) not in pinned_ids][:k] if k else []
        return pinned + chosen

    async def aselect(self, query: str, k: int, always: Iterable[str] = (), mode: Mode = "hybrid") -> list[Tool]:
        """`select` in a thread, so the embedding never blocks the event loop."""
        return await asyncio.to_thread(self.select, query, k, list(always), mode)
