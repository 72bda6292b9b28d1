"""The gating paper's tabular data (arXiv:2603.29915).

Fixtures are written into tmp_path in the UCI archive's formats (Wine Quality
``;``-csv with a quoted header, Dry Bean and Rice ARFF with their attribute
names and class labels, Ecoli's whitespace table). Splits are checked against
scikit-learn's ``train_test_split`` called here independently, scaling against
NumPy statistics of the training rows, and each malformed file against the
error type and a message that names the file and the problem.
"""

import sys

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from jaxcxai.data import tabular, uci
from jaxcxai.data.validate import DataFormatError

N = 40  # 70/15/15 of 40 rows is exactly 28/6/6.
BEAN_FEATURES = (
    "Area", "Perimeter", "MajorAxisLength", "MinorAxisLength", "AspectRation",
    "Eccentricity", "ConvexArea", "EquivDiameter", "Extent", "Solidity",
    "roundness", "Compactness", "ShapeFactor1", "ShapeFactor2",
    "ShapeFactor3", "ShapeFactor4",
)  # fmt: skip
RICE_FEATURES = (
    "Area", "Perimeter", "Major_Axis_Length", "Minor_Axis_Length",
    "Eccentricity", "Convex_Area", "Extent",
)  # fmt: skip
BEAN_LABELS = ("SEKER", "BARBUNYA", "BOMBAY", "CALI", "HOROZ", "SIRA", "DERMASON")


def _values(n, d, seed):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(50.0, 10.0, (n, d)) * rng.uniform(0.1, 10, d), 4)


def _wine_csv(path, x, quality):
    header = ";".join(f'"{c}"' for c in uci.WINE_FEATURES + ("quality",))
    rows = [";".join([*map(repr, map(float, r)), str(q)]) for r, q in zip(x, quality)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _arff(path, relation, features, classes, x, labels):
    lines = [f"% {relation}", f"@RELATION {relation}", ""]
    lines += [f"@ATTRIBUTE {f} NUMERIC" for f in features]
    lines += ["@ATTRIBUTE Class {" + ",".join(classes) + "}", "", "@DATA"]
    lines += [",".join([*map(repr, map(float, r)), c]) for r, c in zip(x, labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _ecoli(path, x, labels):
    rows = [
        f"SEQ{i:03d}_ECOLI  " + "  ".join(f"{v:.2f}" for v in r) + f"  {c}"
        for i, (r, c) in enumerate(zip(x, labels))
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def wine(tmp_path):
    x = _values(N, 11, 0)
    quality = np.resize([3, 4, 5, 6, 7, 8, 5, 6], N)
    return _wine_csv(tmp_path / "winequality-red.csv", x, quality), x, quality


@pytest.fixture
def bean(tmp_path):
    x = _values(N, 16, 1)
    labels = [BEAN_LABELS[i % 7] for i in range(N)]
    path = tmp_path / "Dry_Bean_Dataset.arff"
    return _arff(path, "DryBean", BEAN_FEATURES, BEAN_LABELS, x, labels), x, labels


@pytest.fixture
def rice(tmp_path):
    x = _values(N, 7, 2)
    labels = ["Cammeo" if i % 3 else "Osmancik" for i in range(N)]
    path = tmp_path / "Rice_Cammeo_Osmancik.arff"
    classes = uci.RICE_CLASSES
    return _arff(path, "Rice", RICE_FEATURES, classes, x, labels), x, labels


@pytest.fixture
def ecoli(tmp_path):
    x = np.round(np.random.default_rng(3).uniform(0, 1, (N, 7)), 2)
    labels = [uci.ECOLI_CLASSES[i % 8] for i in range(N)]
    return _ecoli(tmp_path / "ecoli.data", x, labels), x, labels


def _reference(x, y, seed=42):
    """The paper's split and scaling, from scikit-learn and NumPy directly."""
    x_tr, x_hold, y_tr, y_hold = train_test_split(
        x, y, test_size=0.3, random_state=seed
    )
    x_va, x_te, y_va, y_te = train_test_split(
        x_hold, y_hold, test_size=0.5, random_state=seed
    )
    mean, std = x_tr.mean(0), x_tr.std(0)
    std = np.where(std > 0, std, 1.0)
    return [
        ((a - mean) / std, b) for a, b in [(x_tr, y_tr), (x_va, y_va), (x_te, y_te)]
    ]


def _check_against_reference(s, x, y):
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (28, 6, 6)
    got = [(s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)]
    for (gx, gy), (rx, ry) in zip(got, _reference(x, y)):
        assert gx.dtype == np.float32 and gy.dtype == np.int32
        np.testing.assert_allclose(gx, rx, atol=1e-5)
        np.testing.assert_array_equal(gy, ry)


def test_wine_quality_binarised_split_and_scaled(wine):
    path, x, quality = wine
    rx, ry, features, classes = uci.read_wine_quality(str(path))
    np.testing.assert_allclose(rx, x)
    np.testing.assert_array_equal(ry, (quality >= 6).astype(int))
    assert ry[quality == 6].all() and not ry[quality == 5].any()
    assert features == uci.WINE_FEATURES and len(classes) == 2
    s = uci.load_wine_quality(str(path))
    assert s.name == "wine_quality" and s.role == "weak_signal_binary"
    assert s.x_train.shape == (28, 11)
    _check_against_reference(s, x, quality >= 6)


def test_wine_quality_directory_reads_red_then_white(wine, tmp_path):
    path, x, quality = wine
    _wine_csv(tmp_path / "winequality-white.csv", x[:10] + 1, quality[:10])
    rx, ry, _, _ = uci.read_wine_quality(str(tmp_path))
    np.testing.assert_allclose(rx, np.concatenate([x, x[:10] + 1]))
    s = uci.load_from_dir(str(tmp_path), "wine_quality")
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == N + 10


@pytest.mark.parametrize("which", ["bean", "rice"])
def test_arff_sets(which, request):
    path, x, labels = request.getfixturevalue(which)
    read, load, classes, features = {
        "bean": (uci.read_dry_bean, uci.load_dry_bean, uci.DRY_BEAN_CLASSES, BEAN_FEATURES),
        "rice": (uci.read_rice, uci.load_rice, uci.RICE_CLASSES, RICE_FEATURES),
    }[which]  # fmt: skip
    rx, ry, rfeatures, rclasses = read(str(path))
    np.testing.assert_allclose(rx, x)
    assert [rclasses[i] for i in ry] == labels
    assert rfeatures == features and set(rclasses) == set(labels)
    s = load(str(path))
    assert s.x_train.shape == (28, len(features)) and s.class_names == classes
    _check_against_reference(s, x, ry)
    assert uci.load_from_dir(str(path.parent), s.name).x_test.shape == s.x_test.shape


def test_ecoli(ecoli):
    path, x, labels = ecoli
    rx, ry, features, classes = uci.read_ecoli(str(path))
    np.testing.assert_allclose(rx, x)
    assert [classes[i] for i in ry] == labels and len(classes) == 8
    s = uci.load_ecoli(str(path))
    assert s.role == "small_imbalanced" and s.x_val.shape == (6, 7)
    _check_against_reference(s, x, ry)


def test_scaling_uses_training_rows_only(ecoli):
    path, x, _ = ecoli
    s = uci.load_ecoli(str(path))
    np.testing.assert_allclose(s.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(s.x_train.std(0), 1, atol=1e-5)
    train, hold = train_test_split(np.arange(N), test_size=0.3, random_state=42)
    val, test = train_test_split(hold, test_size=0.5, random_state=42)
    mean, std = x[train].mean(0), x[train].std(0)
    np.testing.assert_allclose(s.train_mean, mean)
    np.testing.assert_allclose(s.train_scale, std)
    np.testing.assert_allclose(s.x_val, (x[val] - mean) / std, atol=1e-5)
    np.testing.assert_allclose(s.x_test, (x[test] - mean) / std, atol=1e-5)
    # Statistics over all rows (or the held-out rows) would give other values.
    assert not np.allclose(s.x_test, (x[test] - x.mean(0)) / x.std(0), atol=1e-3)
    assert not np.allclose(s.x_test, (x[test] - x[test].mean(0)) / x[test].std(0))


def test_seed_reproducible_and_changes_split(rice):
    path = str(rice[0])
    a, b, c = uci.load_rice(path), uci.load_rice(path), uci.load_rice(path, seed=0)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


@pytest.mark.parametrize("role", tabular.ROLES)
def test_embedded_roles(role):
    s = tabular.load_embedded(role)
    n = len(s.y_train) + len(s.y_val) + len(s.y_test)
    rows, classes = {
        "weak_signal_binary": (6000, 2),
        "multiclass_separated": (1797, 10),
        "clean_binary": (569, 2),
        "small_imbalanced": (178, 3),
    }[role]
    assert (n, s.num_classes, s.role) == (rows, classes, role)
    hold = int(np.ceil(0.3 * rows))
    assert len(s.y_train) == rows - hold and len(s.y_test) == int(np.ceil(hold / 2))
    assert s.x_train.shape[1] == s.num_features == len(s.feature_names)
    np.testing.assert_allclose(s.x_train.mean(0), 0, atol=1e-4)
    assert set(np.unique(s.y_train)) == set(range(classes))
    np.testing.assert_array_equal(s.x_val, tabular.load_embedded(role).x_val)


def test_embedded_matches_reference_split():
    from sklearn.datasets import load_wine

    bunch = load_wine()
    s = tabular.load_embedded("small_imbalanced")
    ref = _reference(bunch.data, bunch.target)
    np.testing.assert_allclose(s.x_val, ref[1][0], atol=1e-5)
    np.testing.assert_array_equal(s.y_test, ref[2][1])
    counts = np.bincount(bunch.target)
    assert counts.min() < counts.max()  # imbalanced, unlike iris


# ---------------------------------------------------------------- malformed


def _fails(fn, path, *words, exc=DataFormatError):
    with pytest.raises(exc) as info:
        fn(str(path))
    msg = str(info.value)
    assert str(path) in msg and info.value.path == str(path), msg
    for w in words:
        assert w in msg, msg
    return info.value


LOADERS = {
    "winequality-red.csv": uci.load_wine_quality,
    "Dry_Bean_Dataset.arff": uci.load_dry_bean,
    "Rice_Cammeo_Osmancik.arff": uci.load_rice,
    "ecoli.data": uci.load_ecoli,
}


@pytest.mark.parametrize("name", LOADERS)
def test_missing_and_empty_files(name, tmp_path):
    path = tmp_path / name
    err = _fails(LOADERS[name], path, "file not found", exc=uci.DataFileNotFoundError)
    assert isinstance(err, FileNotFoundError)
    path.write_text("  \n\n")
    _fails(LOADERS[name], path, "empty file")


def _edit(path, line, old, new):
    lines = path.read_text().splitlines()
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


def test_wine_malformed(wine):
    path, x, quality = wine
    path.write_text(path.read_text().replace(";", ","))
    _fails(uci.read_wine_quality, path, "line 1", "wrong delimiter")
    _wine_csv(path, x, quality)
    path.write_text(path.read_text().replace('"alcohol";', "", 1))  # no alcohol
    _fails(uci.read_wine_quality, path, "line 1", "header", "expected")
    _wine_csv(path, x, quality)
    path.write_text(path.read_text().splitlines()[0] + "\n")
    _fails(uci.read_wine_quality, path, "no data rows")
    _wine_csv(path, x, quality)
    _edit(path, 5, ";", ";;")
    _fails(uci.read_wine_quality, path, "line 5", "13 fields")
    _wine_csv(path, x, quality)
    _edit(path, 7, repr(float(x[5, 0])), "abc")
    _fails(uci.read_wine_quality, path, "line 7", "'fixed acidity'", "not a number")
    _wine_csv(path, x, quality)
    _edit(path, 9, repr(float(x[7, 0])), "nan")
    _fails(uci.read_wine_quality, path, "line 9", "non-finite")


@pytest.mark.parametrize("which", ["bean", "rice"])
def test_arff_malformed(which, request):
    path, x, labels = request.getfixturevalue(which)
    read = {"bean": uci.read_dry_bean, "rice": uci.read_rice}[which]
    text = path.read_text()
    first = len(text.split("@DATA")[0].splitlines()) + 2  # first data line
    _edit(path, first + 1, repr(float(x[1, 2])), "12x")
    _fails(read, path, f"line {first + 1}", "not a number")
    path.write_text(text)
    _edit(path, first + 2, repr(float(x[2, 0])), "?")
    _fails(read, path, f"line {first + 2}", "missing value")
    path.write_text(text)
    _edit(path, first + 3, repr(float(x[3, 1])), "inf")
    _fails(read, path, f"line {first + 3}", "non-finite")
    path.write_text(text)
    _edit(path, first, labels[0], labels[0] + ",1.0")  # an extra field
    _fails(read, path, f"line {first}", "fields")
    path.write_text(text.replace(",", ";"))  # wrong delimiter in the data
    _fails(read, path, f"line {first}", "fields")
    path.write_text(text.split("@DATA")[0] + "@DATA\n")
    _fails(read, path, "no data rows")
    path.write_text(text.replace("@ATTRIBUTE Area NUMERIC\n", ""))
    _fails(read, path, "attributes")
    path.write_text(text.replace("@DATA", "@DATUM"))
    _fails(read, path, "no @DATA")


def test_unknown_class_and_extension(bean, ecoli, tmp_path):
    path, _, labels = bean
    _edit(path, len(path.read_text().splitlines()), labels[-1], "PINTO")
    _fails(uci.read_dry_bean, path, "unknown class 'PINTO'")
    epath = ecoli[0]
    _edit(epath, 4, ecoli[2][3], "xx")
    _fails(uci.read_ecoli, epath, "line 4", "unknown class 'xx'")
    _fails(uci.read_rice, tmp_path / "rice.csv", "unsupported extension")


def test_xlsx_without_openpyxl(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import now fails
    path = tmp_path / "Dry_Bean_Dataset.xlsx"
    path.write_bytes(b"PK\x03\x04")
    _fails(uci.read_dry_bean, path, "openpyxl", ".arff")
    _fails(uci.read_rice, tmp_path / "Rice.xlsx", "file not found",
           exc=uci.DataFileNotFoundError)  # fmt: skip


def test_ecoli_malformed(ecoli):
    path, x, labels = ecoli
    text = path.read_text()
    path.write_text(text.replace("  ", ","))
    _fails(uci.read_ecoli, path, "line 1", "wrong delimiter")
    path.write_text(text)
    _edit(path, 3, f"{x[2, 6]:.2f}  {labels[2]}", labels[2])  # a column short
    _fails(uci.read_ecoli, path, "line 3", "8 fields")
    path.write_text(text)
    _edit(path, 6, f"  {x[5, 1]:.2f}", "  0.x1")
    _fails(uci.read_ecoli, path, "line 6", "'gvh'", "not a number")
    path.write_text(text)
    _edit(path, 8, f"  {x[7, 0]:.2f}", "  -inf")
    _fails(uci.read_ecoli, path, "line 8", "'mcg'", "non-finite")


def test_load_from_dir_names_the_missing_files(tmp_path):
    with pytest.raises(uci.DataFileNotFoundError) as info:
        uci.load_from_dir(str(tmp_path), "rice")
    assert info.value.path == str(tmp_path / "Rice_Cammeo_Osmancik.arff")
    assert "Rice_Cammeo_Osmancik.xlsx" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(ValueError, match="iris"):
        uci.load_from_dir(str(tmp_path), "iris")
