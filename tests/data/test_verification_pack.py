"""insightface verification packs: safe reading (nothing a pickle names runs), Python-2 packs,
NumPy bool labels, and the benchmark registry's layouts (CFP, AgeDB, CALFW / CPLFW pairs)."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_cli.data.benchmark_sets import (
    benchmark_names,
    get_benchmark,
    load_benchmark,
    parse_spec,
    read_labelled_pairs,
    read_two_line_pairs,
)
from facenet_cli.data.pairs_file import PathPair
from facenet_cli.data.verification_pack import (
    UnsafePackError,
    pack_batches,
    read_pack,
    write_pack,
)
from facenet_cli.errors import EXIT_BAD_INPUT, InputError


def png_bytes(seed: int, size: int = 12) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def py2_pickle(images: list[bytes], issame: list[bool]) -> bytes:
    """``pickle.dump((bins, issame), f, protocol=2)`` as Python 2 writes it: each ``str`` a
    BINSTRING (which Python 3 reads as text unless told ``encoding='bytes'``)."""
    out = bytearray(b"\x80\x02]q\x00(")
    for b in images:
        out += b"T" + struct.pack("<I", len(b)) + b
    out += b"e](" + b"".join(b"\x88" if v else b"\x89" for v in issame) + b"e\x86q\x01."
    return bytes(out)


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pack_round_trip_and_pickle_protocols(tmp_path):
    images = [png_bytes(i) for i in range(4)]
    path = write_pack(tmp_path / "lfw.bin", images, [True, False])
    pack = read_pack(path)
    assert pack.images == images and pack.issame.tolist() == [True, False]
    for protocol in (2, 3, 5):  # protocol 2 pickles bytes through _codecs.encode
        for labels in ([True, False], np.array([True, False])):
            p = tmp_path / f"p{protocol}.bin"
            p.write_bytes(pickle.dumps((images, labels), protocol=protocol))
            got = read_pack(p)
            assert got.images == images and got.issame.tolist() == [True, False]


def test_python2_pack_reads_its_str_images_as_bytes(tmp_path):
    images = [png_bytes(i) for i in range(4)]
    data = py2_pickle(images, [False, True])
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)  # noqa: S301 - shows why encoding='bytes' is needed (our own data)
    path = tmp_path / "old.bin"
    path.write_bytes(data)
    pack = read_pack(path)
    assert pack.images == images and pack.issame.tolist() == [False, True]


def test_a_pack_whose_pickle_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "lfw.bin"
    evil.write_bytes(pickle.dumps(([png_bytes(0), RunsCode(marker)], [True])))
    with pytest.raises(UnsafePackError) as info:
        read_pack(evil)
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message and str(evil) in message and "posix.system" in message
    assert info.value.exit_code == EXIT_BAD_INPUT
    # A NumPy array is admitted only with a bool dtype; eval never.
    floats = tmp_path / "floats.bin"
    floats.write_bytes(pickle.dumps(([png_bytes(0), png_bytes(1)], np.array([1.0]))))
    with pytest.raises(UnsafePackError, match="only a bool array"):
        read_pack(floats)
    sneaky = tmp_path / "eval.bin"
    sneaky.write_bytes(b"\x80\x04cbuiltins\neval\n(Vprint(1)\ntR.")
    with pytest.raises(UnsafePackError, match="builtins.eval"):
        read_pack(sneaky)


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"not a pickle at all", "not a binary pickle"),
        (pickle.dumps({"a": 1}), "expected a pair"),
        (pickle.dumps(([b"x"], [True])), "1 images for 1 pairs"),
        (pickle.dumps(([b"x", 3], [True])), "image 1 of the pack is a int"),
        (pickle.dumps(([b"x", b"y"], [1])), "not a list of bools"),
        (b"\x80\x04\x95", "not an insightface verification pack"),
    ],
)
def test_malformed_packs_are_one_line_input_errors(tmp_path, payload, match):
    path = tmp_path / "bad.bin"
    path.write_bytes(payload)
    with pytest.raises(InputError, match=match) as info:
        read_pack(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_an_undecodable_pack_image_is_named_by_index(tmp_path):
    path = write_pack(tmp_path / "x.bin", [png_bytes(0), b"garbage"], [True])
    with pytest.raises(InputError, match=r"image 1 \(") as info:
        list(pack_batches(read_pack(path), 12, 10))
    assert str(path) in str(info.value)


def test_registry_names_and_specs(tmp_path):
    assert {"lfw", "cfp_ff", "cfp_fp", "agedb_30", "calfw", "cplfw"} <= set(benchmark_names())
    assert all(get_benchmark(n).nrof_folds == 10 for n in benchmark_names())
    with pytest.raises(InputError, match="unknown benchmark 'megaface'; known: lfw, cfp_ff"):
        parse_spec("megaface=x.bin")
    with pytest.raises(InputError, match="expected NAME=PATH"):
        parse_spec("lfw.bin")
    assert parse_spec("cfp_fp=/data/cfp") == ("cfp_fp", Path("/data/cfp"))


def test_calfw_and_agedb_pairs_styles(tmp_path):
    calfw = tmp_path / "pairs_CALFW.txt"
    calfw.write_text("A_0001.jpg 1\nA_0002.jpg 1\nB_0001.jpg 0\nC_0003.jpg 0\n")
    assert read_two_line_pairs(calfw) == [
        PathPair("A_0001.jpg", "A_0002.jpg", True),
        PathPair("B_0001.jpg", "C_0003.jpg", False),
    ]
    calfw.write_text("A_0001.jpg 1\nB_0001.jpg 0\n")
    with pytest.raises(InputError, match=r"pairs_CALFW.txt:2: the two lines of a pair disagree"):
        read_two_line_pairs(calfw)
    agedb = tmp_path / "agedb_30_pairs.txt"
    agedb.write_text("a/1.jpg b/2.jpg 1\n# comment\nc/1.jpg d/2.jpg 0\n")
    assert [p.issame for p in read_labelled_pairs(agedb)] == [True, False]
    agedb.write_text("a/1.jpg b/2.jpg same\n")
    with pytest.raises(InputError, match=r"agedb_30_pairs.txt:1: expected 'path1 path2 1\|0'"):
        read_labelled_pairs(agedb)


def write_cfp(root: Path, folds: int = 10, per_fold: int = 2) -> Path:
    """CFP's distribution layout with tiny PNGs: 001..N/frontal/01.png, profile/01.png."""
    n = folds * per_fold + 1
    f_lines, p_lines = [], []
    for i in range(1, n + 1):
        for kind, lines in (("frontal", f_lines), ("profile", p_lines)):
            d = root / "Data" / "Images" / f"{i:03d}" / kind
            d.mkdir(parents=True, exist_ok=True)
            (d / "01.png").write_bytes(png_bytes(i * 2 + (kind == "profile")))
            lines.append(f"{i} ../Data/Images/{i:03d}/{kind}/01.jpg")  # listed as .jpg
    protocol = root / "Protocol"
    protocol.mkdir()
    (protocol / "Pair_list_F.txt").write_text("\n".join(f_lines) + "\n")
    (protocol / "Pair_list_P.txt").write_text("\n".join(p_lines) + "\n")
    for split in ("FF", "FP"):
        for k in range(1, folds + 1):
            d = protocol / "Split" / split / f"{k:02d}"
            d.mkdir(parents=True)
            ids = [(k - 1) * per_fold + j + 1 for j in range(per_fold)]
            (d / "same.txt").write_text("".join(f"{i},{i}\n" for i in ids))
            (d / "diff.txt").write_text("".join(f"{i},{i + 1}\n" for i in ids))
    return root


def test_cfp_layout_folds_and_aligned_png_fallback(tmp_path):
    root = write_cfp(tmp_path / "cfp")
    fp = load_benchmark("cfp_fp", root)
    ff = load_benchmark("cfp_ff", root / "Protocol")
    assert fp.nrof_pairs == ff.nrof_pairs == 40
    assert fp.pairs is not None and ff.pairs is not None
    first = fp.pairs[0]
    assert first.issame and first.path1.endswith("001/frontal/01.png")
    assert first.path2.endswith("001/profile/01.png")
    assert ff.pairs[0].path2.endswith("frontal/01.png")
    # fold 1: 2 same then 2 different, then fold 2
    assert [p.issame for p in fp.pairs[:6]] == [True, True, False, False, True, True]
    assert fp.root is not None and (fp.root / first.path1).is_file()
    with pytest.raises(InputError, match="not the CFP layout"):
        load_benchmark("cfp_fp", tmp_path)
