"""Human-labelled sentiment sentences (Hutto & Gilbert, ICWSM 2014), offline.

The four ground-truth files ship inside the source distribution of ``vaderSentiment==3.3.2``
on PyPI (MIT licence). :func:`fetch` downloads that sdist with pip (a package registry, not a
data hub) and unpacks the files into nnlut's cache; the project's set-up runs it. Each line is
``id <TAB> mean score <TAB> sentence``; the score is the mean of 20 ratings on -4..+4.

Binary labels are the sign of the score (exact zeros dropped). Splits are a seeded
permutation, never by position (ids come roughly positives first).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import NNLUTError
from .._files import cache_dir

SDIST = "vaderSentiment==3.3.2"
FILES = {
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
}


def data_dir() -> Path:
    return cache_dir() / "data" / "hutto_ICWSM_2014"


def fetch(force: bool = False) -> Path:
    """Make sure the four files are in the cache (downloading the sdist with pip if needed)."""
    target = data_dir()
    if not force and all((target / f).exists() for f in FILES.values()):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp, "-q"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("vaderSentiment-*.tar.gz"))
        if res.returncode != 0 or not sdists:
            raise NNLUTError(f"could not download {SDIST} with pip: {res.stderr.strip()[-300:]}")
        with tarfile.open(sdists[0]) as outer:
            inner = next((m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz")), None)
            if inner is None:
                raise NNLUTError(f"{SDIST} does not contain hutto_ICWSM_2014.tar.gz")
            fobj = outer.extractfile(inner)
            assert fobj is not None
            with tarfile.open(fileobj=fobj) as tin:
                staged = Path(tmp) / "out"
                staged.mkdir()
                for name in FILES.values():
                    member = next((m for m in tin.getmembers() if m.name.endswith("/" + name)), None)
                    if member is None:
                        raise NNLUTError(f"{SDIST}'s data archive lacks {name}")
                    src = tin.extractfile(member)
                    assert src is not None
                    (staged / name).write_bytes(src.read())
        target.mkdir(parents=True, exist_ok=True)
        for name in FILES.values():
            (staged / name).replace(target / name)
    return target


@dataclass(frozen=True)
class SentimentSet:
    """Sentences with their mean human score and binary label (1 = positive)."""

    name: str
    ids: np.ndarray
    texts: tuple[str, ...]
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray) -> SentimentSet:
        return SentimentSet(self.name, self.ids[index], tuple(self.texts[i] for i in index), self.scores[index],
                            self.labels[index])

    def limit(self, n: int | None, seed: int = 0) -> SentimentSet:
        """A seeded stratified sample of ``n`` sentences, in the original order; the whole set
        when ``n`` is None or not smaller. Both classes keep their share, and within each class
        the quartiles of |human score| keep theirs (near-zero scores are the hard sentences, so
        this also keeps the difficulty mix and lowers the spread of accuracy between samples)."""
        if n is None or n >= len(self):
            return self
        return self.subset(stratified_sample(self.labels, n, seed, strata=self.difficulty()))

    def difficulty(self, bins: int = 4) -> np.ndarray:
        """Quartile (0..bins-1) of |score| within each sentence's class, int64 ``(N,)``."""
        out = np.zeros(len(self), dtype=np.int64)
        for c in np.unique(self.labels):
            idx = np.flatnonzero(self.labels == c)
            rank = np.argsort(np.argsort(np.abs(self.scores[idx]), kind="stable"), kind="stable")
            out[idx] = rank * bins // len(idx)
        return out

    @property
    def positive_share(self) -> float:
        return float(self.labels.mean()) if len(self) else float("nan")


def _allocate(sizes: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over groups in proportion to ``sizes`` (largest-remainder rounding)."""
    exact = sizes * n / sizes.sum()
    take = np.floor(exact).astype(int)
    take[np.argsort(-(exact - take), kind="stable")[: n - int(take.sum())]] += 1
    return take


def stratified_sample(labels: np.ndarray, n: int, seed: int = 0, strata: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of a seeded sample of ``n`` items from ``labels`` (int array, shape
    ``(N,)``) in which every class keeps its share (largest-remainder rounding); with
    ``strata`` (int array ``(N,)``), each class's items are further split over its strata
    in proportion.

    Never a prefix: ids of the sentiment files come roughly positives first.
    """
    labels = np.asarray(labels)
    if not 0 < n <= len(labels):
        raise NNLUTError(f"sample size must be in 1..{len(labels)}, got {n}")
    groups = np.zeros(len(labels), dtype=np.int64) if strata is None else np.asarray(strata)
    if groups.shape != labels.shape:
        raise NNLUTError(f"strata must have one entry per item ({len(labels)}), got shape {groups.shape}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    picked = []
    for c, k in zip(classes, _allocate(counts, n), strict=True):
        members = np.flatnonzero(labels == c)
        subs, sizes = np.unique(groups[members], return_counts=True)
        for g, m in zip(subs, _allocate(sizes, int(k)), strict=True):
            picked.append(rng.choice(members[groups[members] == g], size=m, replace=False))
    return np.sort(np.concatenate(picked))


def load_set(name: str) -> SentimentSet:
    """Load one of ``movie``, ``amazon``, ``nyt``, ``tweets`` (exact-zero scores dropped)."""
    if name not in FILES:
        raise NNLUTError(f"unknown sentiment set {name!r}; available: {', '.join(FILES)}")
    path = data_dir() / FILES[name]
    if not path.exists():
        raise NNLUTError(f"sentiment data not found at {path}; run scripts/setup.sh (or: nnlut data fetch)")
    ids, texts, scores = [], [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise NNLUTError(f"{path.name} line {lineno}: expected 'id<TAB>score<TAB>sentence'")
        score = float(parts[1])
        if score == 0.0:
            continue
        ids.append(int(parts[0]))
        scores.append(score)
        texts.append("\t".join(parts[2:]).strip())
    sc = np.array(scores)
    return SentimentSet(name, np.array(ids), tuple(texts), sc, (sc > 0).astype(np.int64))


def split(data: SentimentSet, seed: int = 0) -> tuple[SentimentSet, SentimentSet]:
    """Seeded half/half split: (train, test)."""
    perm = np.random.default_rng(seed).permutation(len(data))
    half = len(data) // 2
    return data.subset(np.sort(perm[:half])), data.subset(np.sort(perm[half:]))
