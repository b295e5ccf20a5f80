"""Generated bad command lines for ``fastnn.cli.main``, in a child process.

Run by ``cli/test_cli_bad_input_generated.py`` as
``python cli_bad_input.py BACKEND N FOLDER``: ``N`` seeded random bad
invocations of ``train`` (including its cluster and resume options),
``evaluate``, ``predict``, ``bench``, ``sweep`` and the bare command, with the
files they need made in ``FOLDER``. Each must return the documented exit status
with one line ``fastnn: error: ...`` on stderr naming the option (or the file),
never raise, and write nothing. Prints one JSON line: the cases per command,
the failures (the first 20), what was written, whether a pickle ran.
"""

import contextlib
import functools
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import fastnn
from fastnn import cli
from fastnn.cli import common

backend, n_cases, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
rng = np.random.default_rng(20240611)
# Loading the cached MNIST is not under test: load it once, not per case.
common.load_mnist = functools.lru_cache(common.load_mnist)


def net(hidden, n_in, n_out):
    return fastnn.Sequential(
        [
            fastnn.Dense(hidden, activation="relu"),
            fastnn.Dense(n_out, activation="softmax"),
        ],
        input_dim=n_in,
        backend="numpy",
        seed=0,
    )


mnist_model = folder / "mnist.npz"
net(8, 784, 10).save(mnist_model)
small = folder / "small.npz"  # a valid model of the wrong shape for MNIST
net(4, 5, 3).save(small)
small_raw = small.read_bytes()
with np.load(small, allow_pickle=False) as data:
    members = {k: data[k] for k in data.files}
nan_model = folder / "nan.npz"
np.savez(nan_model, **(members | {"params": np.full_like(members["params"], np.nan)}))
marker = folder / "pickle-ran"


class Evil:  # unpickling this would create the marker file
    def __reduce__(self):
        return (open, (str(marker), "w"))


evil = folder / "evil.npz"
np.savez(evil, **(members | {"format": np.array([Evil()], dtype=object)}))


def png(width, height, data=b"\0" * 10):
    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(data))
        + chunk(b"IEND", b"")
    )


digit = np.zeros((40, 40), np.uint8)
digit[8:32, 18:23] = 255
good_image = folder / "digit.png"
Image.fromarray(digit).save(good_image)
Image.new("L", (30, 30), 255).save(folder / "blank.png")
(folder / "text.png").write_text("not an image")
(folder / "empty.png").write_bytes(b"")
(folder / "bomb.png").write_bytes(png(100_000, 100_000))
(folder / "truncated.png").write_bytes(png(30, 30))
(folder / "a-folder").mkdir()
a_file = folder / "a-file"
a_file.write_text("x")


def word():
    return "".join(
        rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(1, 9)))
    )


def pick(values):
    return values[int(rng.integers(len(values)))]


BAD_INT = [
    "0",
    "-1",
    "-64",
    "1.5",
    "2e3",
    "abc",
    "",
    "0x10",
    "nan",
    "inf",
    "--",
    "1,000",
]
BAD_FLOAT = ["nan", "inf", "-inf", "abc", "", "1e309", "--", "1,5"]


# ------------------------------------------------------------ files
def bad_model_file(i):
    # (path, fragment the one-line error must contain besides the path)
    kind = int(rng.integers(10))
    path = folder / f"model-{i}.npz"
    if kind == 0:
        return folder / f"missing-{word()}.npz", "does not exist"
    if kind == 1:
        return folder / "a-folder", "is a folder"
    if kind == 2:
        path.write_bytes(rng.bytes(int(rng.integers(0, 2000))))
        return path, "not a valid fastnn model file"
    if kind == 3:
        path.write_bytes(small_raw[: int(rng.integers(len(small_raw)))])
        return path, "not a valid fastnn model file"
    if kind == 4:
        raw = bytearray(small_raw)
        for _ in range(int(rng.integers(1, 8))):
            raw[int(rng.integers(len(raw)))] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(raw))
        # A flip in zip padding can leave the file readable: then it is
        # still a 5 -> 3 model, which MNIST cannot use.
        return path, ("not a valid fastnn model file", "MNIST needs 784 -> 10")
    if kind == 5:
        return small, "MNIST needs 784 -> 10"
    if kind == 6:
        return nan_model, "NaN or inf"
    if kind == 7:
        return evil, "pickle"
    bad = dict(members)
    name = pick(sorted(bad))
    change = int(rng.integers(5))
    if change == 0:
        del bad[name]
    elif change == 1:
        bad[name] = np.zeros(int(rng.integers(1, 5)), np.float16)
    elif change == 2:
        bad[name] = np.array(word())
    elif change == 3:
        bad[word()] = np.zeros(3)
    else:
        bad[name] = np.zeros((2, 2), np.int64)
    np.savez(path, **bad)
    return path, "not a valid fastnn model file"


def bad_image():
    kind = int(rng.integers(7))
    if kind == 0:
        return folder / f"missing-{word()}.png", "does not exist"
    if kind == 1:
        return folder / "a-folder", "is a folder"
    if kind == 2:
        return folder / "blank.png", "looks blank"
    if kind == 3:
        return folder / "bomb.png", "too large"
    if kind == 4:
        return folder / "truncated.png", "could not be decoded"
    return folder / pick(["text.png", "empty.png"]), "not an image file"


# ------------------------------------------------------------ commands
def train_case(i):
    out = folder / f"out-{i}"
    argv = [
        "train",
        "--backend",
        backend,
        "--limit",
        "200",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--no-plots",
        "-q",
        "-o",
        str(out),
    ]
    kind = int(rng.integers(12))
    if kind == 0:
        opt = pick(["--epochs", "--batch-size", "--limit", "--seed"])
        value = pick(BAD_INT)
        if opt == "--seed" and value == "0":
            value = "-3"
        return argv + [f"{opt}={value}"], 2, f"argument {opt}"
    if kind == 1:
        opt, bad = pick(
            [
                ("--learning-rate", ["0", "-0.1", "-1e3"]),
                ("--lr-decay", ["0", "-0.5", "1.5", "2"]),
                ("--momentum", ["1", "-0.1", "2", "1.0"]),
                ("--weight-decay", ["-1e-5", "-1"]),
                ("--validation-split", ["1", "-0.1", "1.5"]),
            ]
        )
        value = pick(bad + BAD_FLOAT)
        return argv + [f"{opt}={value}"], 2, f"argument {opt}"
    if kind == 2:
        units = [str(int(u)) for u in rng.integers(1, 64, int(rng.integers(0, 3)))]
        units.insert(int(rng.integers(len(units) + 1)), pick(BAD_INT[:8]))
        return argv + ["--hidden", *units], 2, "argument --hidden"
    if kind == 3:
        units = str(int(rng.integers(10**11, 10**13)))
        return argv + ["--hidden", units], 2, "argument --hidden"
    if kind == 4:
        return argv + ["--backend", word() + "x"], 2, "argument --backend"
    if kind == 5:
        value = pick(["float16", "int32", "", "Float32", "float128"])
        return argv + [f"--dtype={value}"], 2, "argument --dtype"
    if kind == 6:
        flag = f"--no-such-{word()}"
        return argv + [flag], 2, flag
    if kind == 7:
        opt = pick(
            [
                "--epochs",
                "--batch-size",
                "--learning-rate",
                "--limit",
                "--seed",
                "--hidden",
                "-o",
                "--dtype",
                "--backend",
            ]
        )
        return argv + [opt], 2, "argument " + ("-o/--output" if opt == "-o" else opt)
    if kind == 8:
        limit = int(rng.integers(1, 300))
        batch = limit + int(rng.integers(1, 10**6))
        return (
            argv + ["--limit", str(limit), "--batch-size", str(batch)],
            2,
            "argument --batch-size",
        )
    if kind == 9:
        limit = int(rng.integers(1, 50))
        split = (
            rng.uniform(0.01, 0.49) / limit
            if rng.integers(2)
            else 1 - rng.uniform(0.01, 0.49) / limit
        )
        return (
            argv + ["--limit", str(limit), "--validation-split", repr(split)],
            2,
            "argument --validation-split",
        )
    if kind == 10:
        return argv + ["-o", str(a_file)], 2, "argument -o/--output"
    if kind == 11:
        return cluster_case(argv, i)
    return argv + [word()], 2, "unrecognized arguments"


def cluster_case(argv, i):
    # Options of data-parallel training and resuming: all refused before
    # any cluster starts or MNIST loads.
    kind = int(rng.integers(5))
    if kind == 0:
        opt = pick(["--workers", "--sync-every"])
        return argv + [f"{opt}={pick(BAD_INT)}"], 2, f"argument {opt}"
    if kind == 1:
        return (
            argv + ["--strategy", pick(["", "async", word() + "x"])],
            2,
            "argument --strategy",
        )
    if kind == 2:
        batch = int(rng.integers(1, 64))
        workers = batch + int(rng.integers(1, 1000))
        return (
            argv + ["--batch-size", str(batch), "--workers", str(workers)],
            2,
            "argument --workers",
        )
    if kind == 3:
        missing = folder / f"no-ckpt-{word()}.npz"
        return argv + ["--resume", str(missing)], 1, "--resume", missing
    return argv + [pick(["--workers", "--scheduler", "--resume"])], 2, "argument --"


def sweep_case(i):
    out = folder / f"out-sweep-{i}"
    argv = [
        "sweep",
        "--backend",
        backend,
        "--limit",
        "200",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--no-plots",
        "-o",
        str(out),
    ]
    kind = int(rng.integers(8))
    if kind == 0:
        opt = pick(["--epochs", "--batch-size", "--limit", "--workers"])
        return argv + [f"{opt}={pick(BAD_INT)}"], 2, f"argument {opt}"
    if kind == 1:
        opt, bad = pick(
            [
                ("--learning-rate", ["0", "-0.1"]),
                ("--momentum", ["1", "-0.1"]),
                ("--weight-decay", ["-1"]),
                ("--seeds", ["-1", "1.5", "x"]),
            ]
        )
        good = ["0.5"] * int(rng.integers(0, 3))
        good.insert(int(rng.integers(len(good) + 1)), pick(bad + BAD_FLOAT[:5]))
        return argv + [opt, *good], 2, f"argument {opt}"
    if kind == 2:
        arch = pick(["0", "8x0", "x8", "8x", "8y8", "-8", "8x-1", ""])
        return argv + ["--hidden", "16", arch], 2, "argument --hidden"
    if kind == 3:
        split = pick(["0", "1", "-0.2", "1.5", "nan"])
        opt = "--validation-split"
        return argv + [opt, split], 2, f"argument {opt}"
    if kind == 4:
        limit = int(rng.integers(2, 300))
        batch = limit + int(rng.integers(1, 10**6))
        return (
            argv + ["--limit", str(limit), "--batch-size", str(batch)],
            2,
            "argument --batch-size",
        )
    if kind == 5:
        return argv + ["-o", str(a_file)], 2, "argument -o/--output"
    if kind == 6:
        return argv + ["--backend", word() + "x"], 2, "argument --backend"
    return argv + [f"--no-such-{word()}"], 2, "--no-such-"


def evaluate_case(i):
    if rng.integers(6):
        path, fragment = bad_model_file(i)
        return ["evaluate", str(path), "--backend", backend], 1, fragment, path
    if rng.integers(2):
        return ["evaluate", "--backend", backend], 2, "MODEL"
    return (
        ["evaluate", str(mnist_model), "--backend", word() + "x"],
        2,
        "argument --backend",
    )


def predict_case(i):
    images = [str(good_image)] * int(rng.integers(0, 3))
    kind = int(rng.integers(6))
    if kind <= 1:
        path, fragment = bad_model_file(i)
        return (
            ["predict", str(path), str(good_image), "--backend", backend],
            1,
            fragment,
            path,
        )
    if kind <= 3:
        path, fragment = bad_image()
        images.insert(int(rng.integers(len(images) + 1)), str(path))
        return (
            ["predict", str(mnist_model), *images, "--backend", backend],
            1,
            fragment,
            path,
        )
    images.append(str(good_image))
    argv = ["predict", str(mnist_model), *images, "--backend", backend]
    if kind == 4:
        plot = pick([folder / "a-folder", folder / f"no-{word()}" / "p.png"])
        return argv + ["--plot", str(plot)], 2, "argument --plot"
    flag, fragment = pick(
        [
            ("--invert=yes", "argument --invert"),
            ("--no-invert=1", "argument --invert"),
            ("--plot", "argument --plot"),
        ]
    )
    return argv + [flag], 2, fragment


def bench_case(i):
    argv = [
        "bench",
        "--backends",
        backend,
        "--configs",
        "S",
        "--samples",
        "64",
        "--rounds",
        "1",
        "-o",
        str(folder / f"bench-{i}.png"),
    ]
    opt = pick(["--rounds", "--samples", "--configs", "--dtype", "--backends", "-o"])
    if opt in ("--rounds", "--samples"):
        value = pick(BAD_INT[:8])
        fragment = opt
    elif opt == "-o":
        value = str(pick([folder / "a-folder", folder / f"no-{word()}" / "b.png"]))
        fragment = "argument -o/--output"
    else:
        value = pick(["XL", "s", "float16", "", word() + "x"])
        fragment = f"argument {opt}"
    return argv + [f"{opt}={value}"], 2, fragment


def global_case(i):
    argv = pick(
        [
            [],
            [word() + "x"],
            ["--" + word() + "x"],
            ["--backend", backend],
            ["-" + word()[0] + "x"],
        ]
    )
    return argv, 2, "fastnn: error: "


GENERATORS = {
    "train": train_case,
    "evaluate": evaluate_case,
    "predict": predict_case,
    "bench": bench_case,
    "sweep": sweep_case,
    "global": global_case,
}
WEIGHTS = [0.36, 0.17, 0.22, 0.08, 0.12, 0.05]

counts, failures = {}, []
for i in range(n_cases):
    command = str(rng.choice(list(GENERATORS), p=WEIGHTS))
    argv, expected, fragments, *path = GENERATORS[command](i)
    fragments = (fragments,) if isinstance(fragments, str) else fragments
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    except BaseException as exc:  # noqa: BLE001 - main must never raise
        code = f"raised {type(exc).__name__}: {exc}"
    lines = err.getvalue().strip().splitlines()
    line = lines[0] if lines else ""
    problems = []
    if code != expected:
        problems.append(f"exit {code!r}, expected {expected}")
    if len(lines) != 1 or not line.startswith("fastnn: error: "):
        problems.append("stderr is not one 'fastnn: error: ' line")
    if not any(f in line for f in fragments):
        problems.append(f"the error does not name {fragments}")
    if path and str(path[0]) not in line:
        problems.append(f"the error does not name the file {str(path[0])!r}")
    if "Traceback" in err.getvalue() + out.getvalue():
        problems.append("traceback")
    if problems:
        failures.append(
            {"argv": argv, "problems": problems, "stderr": err.getvalue()[-500:]}
        )
    counts[command] = counts.get(command, 0) + 1
written = sorted(
    p.name for p in folder.iterdir() if p.name.startswith(("out-", "bench-"))
)
print(
    json.dumps(
        {
            "counts": counts,
            "failures": failures[:20],
            "n_failures": len(failures),
            "written": written,
            "pickle_ran": marker.exists(),
        }
    )
)
