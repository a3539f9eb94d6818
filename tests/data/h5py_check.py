"""Cross-check a converted dataset with h5py and numpy (independent of our C loader).

usage: h5py_check.py DLFS_DATA DATA_TESTGEN WORKDIR
Exits 77 (ctest SKIP_RETURN_CODE) when numpy or h5py is not importable.
"""
import gzip
import os
import shutil
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"SKIPPED: {e} (install numpy and h5py for {sys.executable})")
    sys.exit(77)

data, gen, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
os.chdir(work)
subprocess.run([gen, "gen", "."], check=True)
subprocess.run([data, "convert", "--fashion-mnist", ".", "-o", "fm.h5"], check=True)
subprocess.run([data, "convert", "--train-images", "rgb-train-images.idx",
                "--train-labels", "rgb-train-labels.idx", "--test-images", "rgb-test-images.idx",
                "--test-labels", "rgb-test-labels.idx", "-o", "rgb.h5"], check=True)


def read_idx(path):
    """IDX parsed with numpy: magic, big-endian dims, uint8 payload."""
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    assert raw[:3] == b"\0\0\x08", path
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", ndim, 4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def check(h5, files, classes):
    with h5py.File(h5, "r") as f:
        a = f.attrs
        assert isinstance(a["format"], str) and a["format"] == "dlfs-dataset", repr(a["format"])
        assert int(a["format_version"]) == 1
        got = [c if isinstance(c, str) else c.decode() for c in a["classes"]]
        assert isinstance(a["classes"][0], str), repr(a["classes"])
        assert got == classes, got
        assert isinstance(a["source"], str) and isinstance(a["license"], str)
        for split, (img, lab) in zip(("train", "test"), (files[:2], files[2:])):
            x, y = f[split]["images"], f[split]["labels"]
            want_x = read_idx(img)
            if want_x.ndim == 3:
                want_x = want_x[:, None, :, :]
            assert x.dtype == np.uint8 and x.ndim == 4 and x.shape == want_x.shape, x.shape
            assert y.dtype == np.uint8 and y.shape == (x.shape[0],)
            assert np.array_equal(x[...], want_x), f"{h5}: /{split}/images differ"
            assert np.array_equal(y[...], read_idx(lab)), f"{h5}: /{split}/labels differ"
            assert x.chunks is not None and x.chunks[1:] == x.shape[1:], x.chunks
            if h5py.h5z.filter_avail(h5py.h5z.FILTER_DEFLATE):
                assert x.compression == "gzip" and x.compression_opts == 4
        tr = f["train"]["images"][...].astype(np.float64) / 255
        mean, std = tr.mean(axis=(0, 2, 3)), tr.std(axis=(0, 2, 3))
        assert a["mean"].dtype == np.float64 and a["mean"].shape == mean.shape
        assert np.allclose(a["mean"], mean, atol=1e-12), (a["mean"], mean)
        assert np.allclose(a["std"], std, atol=1e-12), (a["std"], std)
    print(f"ok   {h5}")


FM = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
      "Bag", "Ankle boot"]
check("fm.h5", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"], FM)
check("rgb.h5", ["rgb-train-images.idx", "rgb-train-labels.idx", "rgb-test-images.idx",
                 "rgb-test-labels.idx"], ["0", "1", "2", "3", "4"])
print("PASSED")
