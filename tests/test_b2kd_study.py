"""The black-box studies (benchmarks/b2kd_study.py, beside the scripts it serves): MEKD's convergence grid and accuracy per query.

Tiny sizes only: a synthetic dataset, a 1-epoch teacher trained by the sweep, 3-step generators.
"""
import argparse
import csv
import sys
from pathlib import Path

import pytest

import kdzoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # the studies live beside their scripts
from b2kd_study import (convergence_points, markdown, open_study, plot, queries_figure, query_points,
                                    run_points, run_script, study_arguments, write_csv)
from kdzoo.bench.plan import expand
from kdzoo.bench.recipe.parse import parse_recipe

from conftest import make_bundle

DATASET = "b2kd-study-synth"
N_TRAIN = 64
kdzoo.register_dataset(DATASET, lambda data_root=None, val_size=0, seed=0, augment=False:
                       make_bundle(n_train=N_TRAIN, n_test=16, classes=4, size=10, channels=1), overwrite=True)

RECIPE = f"""
name: study
dataset: {DATASET}
teachers:
  fmnist_cnn_tiny: {{train: {{epochs: 1, batch_size: 16}}}}
pairs:
  - {{teacher: fmnist_cnn_tiny, student: fmnist_cnn_tiny}}
methods:
  - {{name: mekd, label: mekd-soft, access: [probs],
     args: {{gen_steps: 3, gen_batch_size: 8, gen_width: 8, grid_per_class: 2, steps_per_epoch: 2}}}}
  - {{name: gen-ce-hard, access: [label],
     args: {{gen_steps: 3, gen_batch_size: 8, gen_width: 8, grid_per_class: 2, steps_per_epoch: 2}}}}
  - {{name: kd, label: kd-probs, access: [probs]}}
  - {{name: kd, label: kd-label, access: [label]}}
  - {{name: ce, label: ce-pseudo}}
access: [probs]
seeds: [0]
train: {{epochs: 2, batch_size: 8}}
student_data: {{train_fraction: 0.5, hide_labels: true}}
"""


@pytest.fixture(scope="module")
def recipe():
    return parse_recipe(RECIPE)


def test_query_budgets_count_queries_exactly(tmp_path, recipe):
    """Real-image baselines at fractions of the student side's 32 images; generator-based methods at the
    recipe's schedule and pooled at the same numbers of images, their generator's queries on top."""
    points = query_points(expand(recipe, tmp_path), [0.25, 1.0], sizes={DATASET: N_TRAIN})
    assert sorted((p.label, p.query_fraction, p.pool) for p in points) == [
        ("ce-pseudo", 0.25, 0), ("ce-pseudo", 1.0, 0), ("gen-ce-hard", 0.25, 8), ("gen-ce-hard", 1.0, 0),
        ("gen-ce-hard", 1.0, 32), ("kd-label", 0.25, 0), ("kd-label", 1.0, 0), ("kd-probs", 0.25, 0),
        ("kd-probs", 1.0, 0), ("mekd-soft", 0.25, 8), ("mekd-soft", 1.0, 0), ("mekd-soft", 1.0, 32)]
    rows = run_points(recipe, points, tmp_path)           # no cache folder given: OUT/cache
    assert all(r["status"] == "finished" for r in rows)
    generator = 3 * 8 + 4 * 2 * 4                          # 3 GAN steps of 8, a 4-class grid of 2 x 4
    for r in rows:
        if r["private_images"] == "no":
            assert r["prepare_queries"] == generator
            # the recipe's schedule: 2 epochs x 2 fresh batches of 8; a pool: its images, labelled once
            assert r["student_queries"] == (r["pool"] or 2 * 2 * 8) and r["teacher_queries"] == generator + \
                r["student_queries"]
            assert r["student_steps"] == 2 * (-(-r["pool"] // 8) if r["pool"] else 2)
        else:                             # the student side holds 64 x 0.5 x f images, each asked once over 2 epochs
            assert r["teacher_queries"] == r["student_queries"] == {0.25: 8, 1.0: 32}[r["query_fraction"]], r
            assert r["prepare_queries"] == 0
    # one generator per (access, seed): made once in OUT/cache, reused by every other point
    assert len(list((tmp_path / "cache" / "deprivatize").glob("*.pt"))) == 2
    # the table's own runs (f = 1, no pool added) are the bench's runs: same hashes as the plan's
    plan_hashes = {e.hash for e in expand(recipe, tmp_path).entries}
    assert {r["hash"] for r in rows if r["query_fraction"] == 1.0 and not r["pool"]} <= plan_hashes
    table = markdown(rows)
    assert "| kd-probs | probs | yes | 8 | 8 |" in table and "| mekd-soft | probs | no | 32 | 88 |" in table
    mekd = next(r for r in rows if r["label"] == "mekd-soft" and not r["pool"])
    # one seed: std 0; accuracy per 1,000 queries from the row's own numbers
    assert f"| mekd-soft | probs | no | 32 | 88 | {mekd['top1']:.2f} ± 0.00 | {1000 * mekd['top1'] / 88:.2f} | 1 |" \
        in table
    # mekd-soft's rows: the pools (8, 32 images) first, its own schedule last
    assert [line.split("|")[4].strip() for line in table.splitlines() if "| mekd-soft |" in line] == ["8", "32", "32"]
    assert plot(rows, tmp_path / "q.png", "queries").read_bytes()[:4] == b"\x89PNG"
    # resumable: finished points are read, not re-run
    again = run_points(recipe, points, tmp_path, cache_dir=str(tmp_path / "cache"))
    assert [r["top1"] for r in again] == [r["top1"] for r in rows]


def test_queries_figure_draws_every_method_phase_and_the_convergence_points():
    def row(label, private, pool, total, student, top1, seed=0):
        return {"status": "finished", "label": label, "private_images": private, "pool": pool, "seed": seed,
                "teacher_queries": total, "student_queries": student, "top1": top1}
    rows = [row("kd-probs", "yes", 0, q, q, a) for q, a in ((600, 79.0), (6000, 84.0))]
    rows += [row("mekd-soft", "no", n, 192_320 + n, n, a) for n, a in ((600, 60.0), (6000, 70.0))]
    rows += [row("mekd-soft", "no", 0, 448_320, 256_000, a, seed) for seed, a in ((0, 75.0), (1, 76.0))]
    conv = [{"status": "finished", "label": "mekd-soft", "epochs": "40", "steps_per_epoch": "50",
             "teacher_queries": q, "top1": a} for q, a in ((281_920, 49.3), (1_216_320, 77.95))]
    fig = queries_figure(rows, conv)
    left, right = fig.axes
    lines = {line.get_label(): line for line in left.get_lines()}
    assert set(lines) == {"kd-probs (real images)", "mekd-soft (pool)", "mekd-soft (every step)",
                          "mekd-soft convergence, student 40 x 50 (seed 0)"}
    assert list(lines["mekd-soft (pool)"].get_xdata()) == [192_920, 198_320]
    assert list(lines["mekd-soft (every step)"].get_ydata()) == [75.5]               # the mean over seeds
    assert list(lines["mekd-soft convergence, student 40 x 50 (seed 0)"].get_xdata()) == [281_920, 1_216_320]
    # the right panel: the student phase's queries, without the convergence points
    assert {line.get_label() for line in right.get_lines()} == set(lines) - {
        "mekd-soft convergence, student 40 x 50 (seed 0)"}
    assert list({line.get_label(): line for line in right.get_lines()}["mekd-soft (pool)"].get_xdata()) == [600, 6000]
    assert left.get_xscale() == right.get_xscale() == "log"


def test_convergence_grid_records_queries_and_time(tmp_path, recipe):
    points = convergence_points(expand(recipe, tmp_path), [2, 4], [(1, 2), (2, 1)])
    assert len(points) == 4 and {p.label for p in points} == {"mekd-soft"}
    rows = run_points(recipe, points, tmp_path, cache_dir=str(tmp_path / "cache"))
    by = {(r["gen_steps"], r["epochs"], r["steps_per_epoch"]): r for r in rows}
    assert set(by) == {(2, 1, 2), (2, 2, 1), (4, 1, 2), (4, 2, 1)}
    for (g, epochs, per_epoch), r in by.items():
        assert r["student_steps"] == epochs * per_epoch == 2
        assert r["teacher_queries"] == g * 8 + 4 * 2 * 4 + 2 * 8     # generator + grid + student batches
        assert r["generator_seconds"] > 0 and r["wall_seconds"] >= r["generator_seconds"]
    path = write_csv(rows, tmp_path / "c.csv")
    assert len(list(csv.DictReader(path.open()))) == 4
    assert plot(rows, tmp_path / "c.png", "convergence").read_bytes()[:4] == b"\x89PNG"


def test_a_recipe_without_mekd_has_no_convergence_study(tmp_path):
    plain = parse_recipe(RECIPE.replace("  - {name: mekd, label: mekd-soft, access: [probs],\n"
                                        "     args: {gen_steps: 3, gen_batch_size: 8, gen_width: 8, "
                                        "grid_per_class: 2, steps_per_epoch: 2}}\n", ""))
    with pytest.raises(kdzoo.ConfigError, match="has no mekd method"):
        convergence_points(expand(plain, tmp_path), [2], [(1, 1)])
    with pytest.raises(kdzoo.ConfigError, match="query fractions must be in"):
        query_points(expand(plain, tmp_path), [0.0])


def test_markdown_gives_mean_and_sample_std_over_seeds():
    rows = [{"status": "finished", "label": "kd-probs", "access": "probs", "private_images": "yes", "pool": 0,
             "query_fraction": 0.5, "teacher_queries": 3000, "student_queries": 3000, "top1": v}
            for v in (80.0, 82.0, 84.0)]
    # mean 82, sample std sqrt(((-2)^2 + 0 + 2^2) / 2) = 2, per 1k queries 82 / 3
    assert "| kd-probs | probs | yes | 3,000 | 3,000 | 82.00 ± 2.00 | 27.33 | 3 |" in markdown(rows)


def test_study_scripts_share_one_argument_block(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    ap = study_arguments(argparse.ArgumentParser(), repo)
    recipe, out, plan = open_study(ap.parse_args([]), repo)
    assert recipe.name == "b2kd_fashion_mnist" and out == Path("runs") / "b2kd_fashion_mnist"   # the bench's OUT
    args = ap.parse_args([str(repo / "recipes" / "b2kd_fashion_mnist_shift.yaml"), "--out", str(tmp_path),
                          "--seeds", "1", "--workers", "2"])
    recipe, out, plan = open_study(args, repo)
    assert (recipe.name, out, args.seeds, args.workers) == ("b2kd_fashion_mnist_shift", tmp_path, [1], 2)
    assert {e.seed for e in plan.entries if e.role == "student"} == {0, 1, 2}


def test_study_scripts_fail_in_one_line_and_say_how_to_resume(capsys):
    def bad_input():
        raise kdzoo.ConfigError("recipe not found: nope.yaml\nsecond line")

    def interrupted():
        raise KeyboardInterrupt

    assert run_script(bad_input, "study.py") == 2
    assert capsys.readouterr().err == "study.py: error: recipe not found: nope.yaml\n"
    assert run_script(interrupted, "study.py") == 130
    assert capsys.readouterr().err == "study.py: interrupted; finished runs are kept and the same command resumes\n"
    assert run_script(lambda: None, "study.py") == 0
