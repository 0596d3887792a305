"""Common random numbers: every random number a model uses is its seed's, shared by every
scheme of the seed, so that two schemes of a seed differ by their start's rule alone; the
streams' version keys every job, and a store of an earlier version is read, kept apart and
retrained."""

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from initbench.initializers import user
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.storage import store
from initbench.training import engines, streams
from initbench.training.streams import initial_model

from .conftest import ROOT

CPU = torch.device("cpu")
FIXTURE = ROOT / "tests" / "fixtures" / "streams-v1"  # a sweep store written by initbench 572c036 (streams 1)
NORMAL_COPY = '''
import math


def {name}(weight, bias, generator):
    """{comment}"""
    weight.normal_(0.0, 1.0 / math.sqrt(weight.shape[1]), generator=generator)
    bias.zero_()
'''


def _weights(scheme: str, seed: int = 0, **settings) -> list[torch.Tensor]:
    model = initial_model(Job(scheme, seed, TrainSettings.of(**settings)), torch.zeros(600, 784))
    return [layer.weight.detach() for layer in model.layers]


def test_a_rule_transforms_the_seeds_stream() -> None:
    """Each layer's draws start from the seed's stream for that layer, whatever the scheme:
    a rule at twice the scale draws exactly twice the weights, and rules of one distribution
    draw the same numbers scaled."""
    for a, b in zip(_weights("normal:0.05"), _weights("normal:0.1")):
        assert torch.equal(2 * a, b)
    for a, b in zip(_weights("uniform:-0.5,0.5"), _weights("uniform:-1,1")):
        assert torch.equal(2 * a, b)
    # The general rule and PyTorch's default both draw U(-1/sqrt(fan_in), 1/sqrt(fan_in)); they compute the
    # bound differently (1/sqrt(n), or gain * sqrt(3/n) with gain sqrt(2/6)), so they agree up to its rounding.
    for a, b in zip(_weights("rule"), _weights("default")):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
    # Another seed, other numbers.
    assert not torch.equal(_weights("rule", seed=1)[0], _weights("rule")[0])


def test_a_layers_draws_do_not_depend_on_the_layers_before(tmp_path: Path) -> None:
    """A scheme that fills its first layer without drawing (a per-layer function reading its
    ``layer`` record) draws the later layers exactly as one that drew it."""
    file = tmp_path / "first_zero.py"
    file.write_text(textwrap.dedent('''
        import math


        def first_zero(weight, bias, generator, layer):
            if layer.role == "input":
                weight.zero_()
            else:
                weight.normal_(0.0, 1.0 / math.sqrt(layer.fan_in), generator=generator)
            bias.zero_()
    '''))
    ours, normal = _weights(f"{file}:first_zero"), _weights("normal")
    assert not ours[0].any()
    assert all(torch.equal(a, b) for a, b in zip(ours[1:], normal[1:]))


def test_lsuv_starts_from_orthogonals_weights(small) -> None:
    """LSUV's orthogonal start is ``orthogonal``'s, each layer then divided by one number."""
    lsuv = initial_model(Job("lsuv", 2, TrainSettings()), small.x_train)
    orthogonal = initial_model(Job("orthogonal", 2, TrainSettings()), small.x_train)
    for a, b in zip(lsuv.layers, orthogonal.layers):
        ratio = a.weight.detach() / b.weight.detach()
        torch.testing.assert_close(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-5, atol=0)


@pytest.mark.parametrize("engine", ["batched", "sequential"])
def test_one_function_under_two_names_trains_to_the_same_numbers(tiny, tmp_path: Path, engine: str) -> None:
    """The same function in two files (one comment apart: two canonical names), registered in
    Python, and the built-in it copies, trained side by side with dropout, scored with
    dropout on: identical losses and accuracies, to the bit."""
    for name, comment in (("a", "one"), ("b", "two")):
        (tmp_path / f"{name}.py").write_text(NORMAL_COPY.format(name="f", comment=comment))
    namespace: dict = {}
    exec(NORMAL_COPY.format(name="g", comment="three"), namespace)
    registered = user.register_function(namespace["g"], "my_normal")
    names = [f"{tmp_path}/a.py:f", f"{tmp_path}/b.py:f", registered, "normal"]
    settings = TrainSettings.of(epochs=1, hidden=(64, 32), dropout=0.3, lesson_eval=True)
    jobs = [Job(name, seed, settings) for seed in (0, 1) for name in names]
    assert len({store.key(job) for job in jobs}) == len(jobs)  # each its own job
    trained = engines.train(jobs, tiny, CPU, engine)
    for seed in (0, 1):
        of_seed = [r for r in trained if r.job.seed == seed]
        for r in of_seed[1:]:
            assert torch.equal(r.losses, of_seed[0].losses) and r.val_acc == of_seed[0].val_acc
            assert r.test_acc == of_seed[0].test_acc
    assert not torch.equal(trained[0].losses, trained[len(names)].losses)  # seeds differ


def test_the_streams_version_enters_every_jobs_identity() -> None:
    job = Job("rule", 0, TrainSettings())
    assert store.identity(job)["streams"] == streams.VERSION == 2
    unversioned = {k: v for k, v in store.identity(job).items() if k != "streams"}
    assert store.key(job) != store._key(store._encoded(unversioned))


def _sweep(config: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "initbench", "sweep", str(config), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def _report(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    fmt = [] if "-f" in extra else ["-f", "json"]
    return subprocess.run([sys.executable, "-m", "initbench", "report", str(folder), "--no-pictures", *fmt, *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_a_store_of_earlier_streams_is_reported_kept_apart_and_retrained(data_dir: Path, tmp_path: Path) -> None:
    """A sweep store written before the streams were common (version 1): reported as it is;
    swept again, every job is retrained under version 2 and the sweep says why; then the
    report shows the new rows, names the old, and --all-versions shows both, never one table
    mixing them under one name; diff pairs the two versions as a change of streams."""
    folder, before = tmp_path / "sweep", tmp_path / "before"
    shutil.copytree(FIXTURE, folder)
    shutil.copytree(FIXTURE, before)
    with sqlite3.connect(folder / store.FILE) as db:
        identities = [json.loads(i) for (i,) in db.execute("SELECT identity FROM jobs")]
    assert identities and all("streams" not in i for i in identities)

    old = _report(folder)
    assert old.returncode == 0, old.stderr
    assert {(r["scheme"], r["seeds"]) for r in json.loads(old.stdout)} == {("rule", 2), ("normal", 2)}

    config = tmp_path / "v1.toml"
    config.write_text(f'data_dir = "{data_dir}"\nschemes = ["rule", "normal"]\nseeds = 2\nepochs = 1\n'
                      'train_samples = 300\nhidden = [32]\n\n[grid]\nlr = [0.001]\n')
    swept = _sweep(config, folder)
    assert swept.returncode == 0, swept.stderr
    said = " ".join(swept.stderr.split())
    assert "In the store: 0; to train: 4" in said and "trained under earlier random streams" in said

    new = _report(folder)
    assert new.returncode == 0, new.stderr
    rows = json.loads(new.stdout)
    assert sorted(r["scheme"] for r in rows) == ["normal", "rule"] and all(r["seeds"] == 2 for r in rows)
    noted = _report(folder, "-f", "markdown")  # the table's notes name what it leaves out
    assert "rule, normal under random streams version 1 (4 rows" in " ".join(noted.stdout.split())
    with store.open_store(folder, write=False) as st:
        shown, older = st.versions()
        every = st.versions(all_versions=True)[0]
    assert set(shown["streams"]) == {streams.VERSION} and len(shown) == 4 and len(every) == 8
    assert {(v.name, v.streams, v.rows) for v in older} == {("rule", 1, 2), ("normal", 1, 2)}
    assert "under random streams version 1" in store.described(older, 2)

    both = _report(folder, "--all-versions")
    assert both.returncode == 0, both.stderr
    assert sorted(r["scheme"] for r in json.loads(both.stdout)) == [
        "normal (streams 1, earlier)", "normal (streams 2)", "rule (streams 1, earlier)", "rule (streams 2)"]

    paired = subprocess.run([sys.executable, "-m", "initbench", "diff", str(before), str(folder), "-f", "markdown"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert paired.returncode == 0, paired.stderr
    assert "B differs from A in random_streams 1 -> 2" in " ".join(paired.stdout.split())
    assert "| rule | 2 |" in paired.stdout and "| normal | 2 |" in paired.stdout

    again = _sweep(config, folder)  # nothing left to train: version 2's rows are finished
    assert again.returncode == 0 and "to train: 0" in again.stderr


ZERO = '''
def zero_(weight, bias, generator, layer):
    """ZerO-like: identity where the shapes allow, zero where a residual branch ends, so every
    block starts as the identity (without the record, each block would double its input)."""
    import torch

    if layer.ends_branch:
        weight.zero_()
    else:
        weight.copy_(torch.eye(*weight.shape))
    bias.zero_()
'''


def test_a_per_layer_scheme_reads_its_layers_record(tmp_path: Path) -> None:
    """A per-layer function with a ``layer`` parameter gets each layer's record: its place,
    fans and residual wiring; ZerO on resmlp zeroes each branch's last layer with it."""
    file = tmp_path / "zero.py"
    file.write_text(ZERO)
    records: list = []
    namespace: dict = {}
    exec("def seen(weight, bias, generator, layer):\n    records.append(layer)\n    weight.zero_()\n"
         "    bias.zero_()\n", {"records": records}, namespace)
    settings = TrainSettings.of(network="resmlp", hidden=(8, 4))  # stream width 8; blocks of inner width 8, 4
    initial_model(Job(user.register_function(namespace["seen"], "seen"), 0, settings), torch.zeros(10, 784))
    assert [(r.index, r.role, r.fan_in, r.fan_out, r.in_branch, r.ends_branch) for r in records] == [
        (0, "input", 784, 8, False, False),
        (1, "hidden", 8, 8, True, False), (2, "hidden", 8, 8, True, True),
        (3, "hidden", 8, 4, True, False), (4, "hidden", 4, 8, True, True),
        (5, "output", 8, 10, False, False)]
    assert all(r.depth == 6 and r.branches == 2 and r.kind == "linear" for r in records)
    model = initial_model(Job(f"{file}:zero_", 0, settings), torch.zeros(10, 784))
    x = torch.rand(3, 8)
    for first, last in ((1, 2), (3, 4)):  # each block x + W2 relu(W1 x) starts as the identity
        block = model.layers[last](torch.relu(model.layers[first](x)))
        assert not block.any()


def test_bias_default_draws_the_seeds_bias_whatever_the_scheme() -> None:
    """--bias default draws each layer's bias from a stream of its own: the same for every scheme
    of a seed, however many numbers the scheme drew for the weights (none: zeros; a weight and a
    bias: default; a QR: orthogonal)."""
    def biases(scheme: str) -> list[torch.Tensor]:
        model = initial_model(Job(scheme, 4, TrainSettings.of(bias="default")), torch.zeros(600, 784))
        return [layer.bias.detach() for layer in model.layers]

    normal = biases("normal")
    for scheme in ("zeros", "default", "orthogonal", "trunc_normal", "he_normal", "sparse"):
        assert all(torch.equal(a, b) for a, b in zip(biases(scheme), normal)), scheme


def test_a_table_never_mixes_two_streams_versions(data_dir: Path, tmp_path: Path) -> None:
    """The version-1 store swept again with one of its two schemes: the report shows version
    2's rule alone and names both schemes' version-1 rows, never normal's beside rule's."""
    folder = tmp_path / "sweep"
    shutil.copytree(FIXTURE, folder)
    config = tmp_path / "rule.toml"
    config.write_text(f'data_dir = "{data_dir}"\nschemes = ["rule"]\nseeds = 2\nepochs = 1\n'
                      'train_samples = 300\nhidden = [32]\n\n[grid]\nlr = [0.001]\n')
    assert _sweep(config, folder).returncode == 0
    reported = _report(folder, "-f", "markdown")
    assert reported.returncode == 0, reported.stderr
    text = " ".join(reported.stdout.split())
    assert "| rule |" in reported.stdout and "| normal |" not in reported.stdout
    assert "rule, normal under random streams version 1 (4 rows" in text
