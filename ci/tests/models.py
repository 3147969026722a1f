"""Small real models saved in MLflow's format, as the generated projects log them."""

from __future__ import annotations

from pathlib import Path


def save_sklearn_forest(
    path: Path,
    trees: int = 100,
    predict_fn: str = "predict_proba",
    max_depth: int | None = None,
    n_jobs: int | None = None,
) -> Path:
    """A scaled random forest on breast cancer, with a signature, input example and drift baseline (the template
    trains it with max_depth 8 and n_jobs -1)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from skops.io import dumps, get_untrusted_types

    from mlci.drift import feature_baseline

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    forest = RandomForestClassifier(trees, max_depth=max_depth, random_state=0, n_jobs=n_jobs)
    model = Pipeline([("scale", StandardScaler()), ("model", forest)])
    model.fit(features, labels)
    output = model.predict_proba(features.head(5)) if predict_fn == "predict_proba" else model.predict(features.head(5))
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(features.head(5), output),
        input_example=features.head(5),
        pyfunc_predict_fn=predict_fn,
        skops_trusted_types=get_untrusted_types(data=dumps(model)),
        metadata={
            "mlci": {
                "name": "tumor-classifier",
                "classes": ["malignant", "benign"],
                "baseline": feature_baseline(features.to_numpy(), list(features.columns)),
            }
        },
    )
    return path


def breast_cancer_frame():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame.drop(columns=["target"])


def mixed_frame(rows: int = 400, seed: int = 0):
    """A table as users bring them: integers, floats with missing values, text categories with missing values."""
    import numpy as np
    import pandas as pd

    generator = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": generator.integers(18, 90, rows),
            "income": np.where(generator.random(rows) < 0.1, np.nan, generator.normal(50_000, 15_000, rows)),
            "city": pd.Series(generator.choice(["Paris", "Lyon", "Nice", ""], rows, p=[0.4, 0.3, 0.2, 0.1])),
            "plan": generator.choice(["basic", "pro"], rows),
            "visits": generator.integers(0, 30, rows),
        }
    )
    frame["city"] = frame["city"].where(frame["city"] != "", None)  # missing, as pandas reads an empty CSV cell
    score = frame["age"] / 90 + (frame["plan"] == "pro") + frame["visits"] / 30
    return frame, score


def save_mixed_model(path: Path, task: str = "classification", prediction_edges: list[float] | None = None) -> Path:
    """A ColumnTransformer pipeline (impute and scale numbers, one-hot text) and a forest, on `mixed_frame`, saved
    as a project saves it: missing text as the empty string, the signature from the whole table."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from skops.io import dumps, get_untrusted_types

    from mlci.drift import feature_baseline

    frame, score = mixed_frame()
    fitted = frame.fillna({"city": "", "plan": ""})
    features = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age", "income", "visits"]),
            ("text", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ]
    )
    if task == "classification":
        estimator, target = RandomForestClassifier(40, random_state=0), (score > score.median()).astype(int)
    else:
        estimator, target = RandomForestRegressor(40, random_state=0), score * 10
    model = Pipeline([("features", features), ("model", estimator)]).fit(fitted, target)
    method = "predict_proba" if task == "classification" else "predict"
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(frame, getattr(model, method)(fitted.head(5))),
        input_example=frame.head(5),
        pyfunc_predict_fn=method,
        skops_trusted_types=get_untrusted_types(data=dumps(model)),
        metadata={
            "mlci": {
                "name": "mixed",
                "baseline": feature_baseline(fitted, list(fitted.columns)),
                **({"prediction_edges": prediction_edges} if prediction_edges else {}),
            }
        },
    )
    return path
