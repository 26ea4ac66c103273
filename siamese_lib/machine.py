"""The machine a run was trained on and its numerics mode (torch and the standard library only). ATen, oneDNN
and MKL pick kernels (and summation orders) by the CPU's ISA; ``portable`` numerics pin all three, so a seed
gives the same bits on any x86-64 CPU with AVX2 (same torch build, threads; not GPUs): ATen capped at AVX2,
oneDNN off (convolutions as im2col + MKL products), MKL's COMPATIBLE branch, strict (the only one MKL honours
on non-Intel CPUs)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

NUMERICS = ("native", "portable")
MODE_VAR = "SIAMESE_LIB_NUMERICS"
# Read by the libraries when they start: set before torch runs its first kernel (child processes inherit).
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE,STRICT"}
ISA_VARS = (*PORTABLE_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# What decides a CPU run's last bits: runs that agree on all of these are meant to be bit-identical.
NUMERICS_KEYS = tuple("numerics torch mkl onednn isa mkl_cbwr onednn_enabled threads device".split())
NATIVE_KEYS = ("cpu_vendor", "cpu_model")  # in native mode the CPU itself also decides them
# MKL's reproducibility branches as mkl_serv_cbwr_get numbers them (1..12; 5 and 11 unused)
_BRANCHES = "OFF AUTO COMPATIBLE SSE2 - SSSE3 SSE4_1 SSE4_2 AVX AVX2 - AVX512".split()
MKL_CBWR_BRANCHES = {number: name for number, name in enumerate(_BRANCHES, 1) if name != "-"}
MKL_CBWR_STRICT = 0x10000
DEVICES = ("auto", "cpu", "cuda")
# a stored fingerprint's typed fields; the rest are text
FINGERPRINT_TYPES = {"threads": int, "onednn_enabled": bool, "cpu_avx512": bool, "env": dict}


def device_type(device: str = "auto") -> str:
    """'cpu' or 'cuda' for a --device value; 'auto' answers 'cpu' without starting torch where no NVIDIA
    driver's device node exists (no CUDA GPU can be present there)."""
    if device not in DEVICES:
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return "cpu"
    available = False
    if os.path.exists("/dev/nvidiactl"):
        import torch

        available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    return "cuda" if available else "cpu"


class NumericsError(RuntimeError):
    """Portable numerics asked for in a process whose torch already runs with other settings."""


def cpuinfo(path="/proc/cpuinfo") -> dict:
    """The first processor's fields of /proc/cpuinfo ('vendor_id', 'model name', 'flags'...); {} elsewhere."""
    try:
        text = Path(path).read_text()
    except OSError:
        return {}
    lines = (line.partition(":") for line in text.split("\n\n", 1)[0].splitlines())
    return {name.strip(): value.strip() for name, sep, value in lines if sep}


def cpu_model() -> str:
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


# torch is imported by each function, not at import time: the command line starts without torch.
@functools.lru_cache(maxsize=1)
def library_versions() -> dict:
    """MKL's and oneDNN's versions as torch reports its build ('unknown' when not found)."""
    import torch

    out = {"mkl": "unknown", "onednn": "unknown"}
    for line in torch.__config__.show().splitlines():
        if "Math Kernel Library Version" in line:
            out["mkl"] = line.split("Version", 1)[1].split("for")[0].strip()
        elif "MKL-DNN v" in line or "oneDNN v" in line:
            out["onednn"] = line.split(" v", 1)[1].split()[0]
    return out


def mkl_cbwr() -> str:
    """MKL's reproducibility branch as MKL itself reports it (e.g. 'COMPATIBLE,STRICT', 'OFF')."""
    import torch

    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        value = lib.mkl_serv_cbwr_get(-1)  # MKL's own (exported) getter; -1: branch and flags
    except (OSError, AttributeError):
        return "unknown"
    name = MKL_CBWR_BRANCHES.get(value & 0xFFFF, str(value & 0xFFFF))
    return name + (",STRICT" if value & MKL_CBWR_STRICT else "")


def gpu_info(device_type: str) -> dict:
    import torch

    if device_type != "cuda" or not torch.cuda.is_available():
        return {}
    cudnn = str(torch.backends.cudnn.version())
    info = {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda, "cudnn": cudnn}
    query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
    try:
        driver = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.split()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        driver = "unknown"
    return {**info, "gpu_driver": driver}


def apply_numerics(mode: str) -> None:
    """Set the numerics for this process and those it starts, before torch computes (enforce_numerics checks
    it): ``portable`` sets PORTABLE_ENV, ``native`` removes it."""
    if mode not in NUMERICS:
        raise ValueError(f"numerics must be one of {', '.join(NUMERICS)}, got {mode!r}")
    os.environ[MODE_VAR] = mode
    for name, value in PORTABLE_ENV.items():
        if mode == "portable":
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    if "torch" in sys.modules:  # else training applies it (enforce_numerics) when torch starts
        sys.modules["torch"].backends.mkldnn.enabled = mode == "native"


def enforce_numerics() -> str:
    """Apply this process's mode (MODE_VAR; native when unset) where it still can (oneDNN's switch), and fail
    loudly where torch already runs otherwise. Returns the mode."""
    import torch

    mode = os.environ.get(MODE_VAR, "native")
    if mode not in NUMERICS:
        raise NumericsError(f"{MODE_VAR}={mode!r}: must be one of {', '.join(NUMERICS)}")
    torch.backends.mkldnn.enabled = mode == "native"
    wrong = portable_problems() if mode == "portable" else []
    if wrong:
        raise NumericsError(
            f"portable numerics asked for, but this process started torch with {'; '.join(wrong)}: set them "
            "before torch starts (a fresh process)"
        )
    return mode


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` for the block, restored after (threads decide last bits)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def portable_problems() -> list[str]:
    """How this process differs from portable numerics (empty when it runs them)."""
    import torch

    isa, cbwr = torch.backends.cpu.get_cpu_capability(), mkl_cbwr()
    wrong = [f"ATen kernels at {isa}"] if isa not in ("AVX2", "DEFAULT") else []
    return wrong + ([f"MKL_CBWR {cbwr}"] if cbwr not in ("COMPATIBLE,STRICT", "unknown") else [])


def fingerprint(device_type: str = "cpu") -> dict:
    """What a record says about the machine and the numerics it ran with (see NUMERICS_KEYS)."""
    import torch

    info = cpuinfo()
    mode = os.environ.get(MODE_VAR, "native")
    if mode == "portable" and (portable_problems() or torch.backends.mkldnn.enabled):
        mode = "mixed"  # asked for, not in effect: never claims what it cannot guarantee
    return {
        "numerics": mode,
        "device": device_type,
        "cpu_vendor": info.get("vendor_id") or "unknown",
        "cpu_model": cpu_model(),
        "cpu_avx512": "avx512f" in info.get("flags", "").split(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        **library_versions(),
        "mkl_cbwr": mkl_cbwr(),
        "onednn_enabled": bool(torch.backends.mkldnn.enabled),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "os": platform.system(),
        "env": {name: os.environ[name] for name in ISA_VARS if name in os.environ},
        **gpu_info(device_type),
    }


def fingerprint_problems(fp, typed: bool = False) -> list[str]:
    """What is wrong with a stored fingerprint (empty when usable); ``typed``: a mistyped field too."""
    if not isinstance(fp, dict):
        return ["machine fingerprint is not an object"]
    missing = [k for k in NUMERICS_KEYS + NATIVE_KEYS if k not in fp]
    if missing:
        return [f"machine fingerprint lacks {missing}"]
    for k, v in fp.items() if typed else ():
        kind = FINGERPRINT_TYPES.get(k, str)
        if v is not None and not isinstance(v, kind):
            return [f"machine.{k} must be {kind.__name__}, not {type(v).__name__}"]
    return []


def numerics_signature(fp: dict | None) -> tuple | None:
    """The fields two runs must share to be bit-identical; None when no fingerprint was stored."""
    if not fp or fingerprint_problems(fp) or fp["numerics"] not in NUMERICS or fp["device"] != "cpu":
        return None
    keys = NUMERICS_KEYS if fp["numerics"] == "portable" else NUMERICS_KEYS + NATIVE_KEYS
    return tuple((k, fp[k]) for k in keys)


def must_be_identical(a: dict | None, b: dict | None) -> bool:
    """True when both fingerprints say the same seed must give the same bits (same numerics on the same
    torch, libraries, threads; in native mode also the same CPU)."""
    sa = numerics_signature(a)
    return sa is not None and sa == numerics_signature(b)


def short(fp: dict | None) -> str:
    """A few words for a per-seed table: 'AMD EPYC/AVX2/1 thr/native'."""
    if not fp:
        return "not recorded"
    gpu = f"/{fp['gpu']}" if fp.get("gpu") else ""
    return f"{fp.get('cpu_model')}/{fp.get('isa')}/{fp.get('threads')} thr/{fp.get('numerics')}{gpu}"


def describe(fp: dict | None) -> str:
    """One line: 'AMD EPYC (AuthenticAMD), ATen AVX2, 1 thread, native numerics, torch 2.14.1, ...'."""
    if not fp:
        return "not recorded (before fingerprints)"
    gpu = f", GPU {fp['gpu']} (driver {fp.get('gpu_driver')})" if fp.get("gpu") else ""
    return (
        f"{fp.get('cpu_model')} ({fp.get('cpu_vendor')}), ATen {fp.get('isa')}, "
        f"{fp.get('threads')} thread{'s' if fp.get('threads') != 1 else ''}, {fp.get('numerics')} numerics, "
        f"torch {fp.get('torch')}, MKL {fp.get('mkl')}, oneDNN {fp.get('onednn')}"
        f"{' (off)' if not fp.get('onednn_enabled') else ''}{gpu}"
    )
