import numpy as np
import pytest

from {{ cookiecutter.package_name }} import business


def test_expected_cost_formula():
    # 20% positives; 40% of them missed at 4 each, 10% of the negatives acted on at 1 each
    assert business.expected_cost(0.2, 0.6, 0.1, cost_fp=1.0, cost_fn=4.0) == pytest.approx(
        0.2 * 0.4 * 4 + 0.8 * 0.1 * 1
    )
    assert business.expected_cost(0.2, 1.0, 0.0, 1.0, 4.0) == 0.0  # a perfect process costs nothing
    assert business.expected_cost(0.3, 0.5, 0.2, 2.0, 0.0) == pytest.approx(0.7 * 0.2 * 2.0)


def test_expected_cost_agrees_with_the_cost_of_actual_decisions():
    y_true = np.array([1] * 20 + [0] * 80)
    y_pred = np.array([1] * 12 + [0] * 8 + [1] * 8 + [0] * 72)  # TPR 12/20, FPR 8/80
    assert business.cost_of_predictions(y_true, y_pred, 1.0, 4.0) == pytest.approx(
        business.expected_cost(0.2, 0.6, 0.1, 1.0, 4.0)
    )


@pytest.mark.parametrize(
    "args",
    [
        (1.2, 0.5, 0.5, 1, 1),
        (0.5, -0.1, 0.5, 1, 1),
        (0.5, 0.5, 1.5, 1, 1),
        (0.5, 0.5, 0.5, -1, 1),
        (0.5, 0.5, 0.5, 1, -1),
    ],
)
def test_expected_cost_rejects_impossible_inputs(args):
    with pytest.raises(ValueError):
        business.expected_cost(*args)


def test_trivial_policies():
    policies = business.trivial_policies(0.25, cost_fp=1.0, cost_fn=4.0)
    assert policies == {"act on nobody": pytest.approx(0.25 * 4.0), "act on everybody": pytest.approx(0.75 * 1.0)}


def test_cost_optimal_threshold_value():
    assert business.cost_optimal_threshold(1.0, 4.0) == pytest.approx(0.2)
    assert business.cost_optimal_threshold(1.0, 1.0) == pytest.approx(0.5)
    assert business.cost_optimal_threshold(3.0, 1.0) == pytest.approx(0.75)


@pytest.mark.parametrize("cost_fp, cost_fn", [(1.0, 4.0), (1.0, 1.0), (5.0, 2.0)])
def test_cost_optimal_threshold_minimises_the_cost_of_calibrated_scores(cost_fp, cost_fn):
    # calibrated scores spread evenly over [0, 1]: a case with score p is positive with probability p
    p = np.linspace(0, 1, 2001)
    candidates = np.linspace(0, 1, 201)
    cost = [np.mean(np.where(p >= t, (1 - p) * cost_fp, p * cost_fn)) for t in candidates]
    best = candidates[int(np.argmin(cost))]
    assert best == pytest.approx(business.cost_optimal_threshold(cost_fp, cost_fn), abs=0.006)


def test_charter_markdown_carries_the_numbers():
    charter = {
        "project_name": "Demo",
        "problem": "Who to call.",
        "decision": "call",
        "decision_maker": "team",
        "positive_label": "yes",
        "target": "bought",
        "positive_outcome": "buys",
        "data_path": "data/raw/x.csv",
        "rows": 12345,
        "prevalence": 0.2,
        "stakeholders": ["Sales", "Legal"],
        "cost_false_positive": 1,
        "cost_false_negative": 4,
        "cost_optimal_threshold": 0.2,
        "baseline_process": "manual",
        "baseline_true_positive_rate": 0.5,
        "baseline_false_positive_rate": 0.1,
        "baseline_expected_cost": 0.48,
        "alternative_policies": {"act on nobody": 0.8},
        "sensitive_features": ["sex"],
    }
    text = business.charter_markdown(charter)
    assert "# Project charter: Demo" in text
    assert "12,345 rows, 20.0% positive" in text
    assert "- Sales\n- Legal" in text
    assert "| act on nobody | 0.800 |" in text
    assert "**0.480 per decision**" in text
