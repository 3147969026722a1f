"""Small real models saved in MLflow's format, as the generated projects log them."""

from __future__ import annotations

from pathlib import Path


def save_sklearn_forest(path: Path, trees: int = 100, predict_fn: str = "predict_proba") -> Path:
    """A scaled random forest on breast cancer, with a signature, input example and drift baseline."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from skops.io import dumps, get_untrusted_types

    from mlci.drift import feature_baseline

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    model = Pipeline([("scale", StandardScaler()), ("model", RandomForestClassifier(trees, random_state=0))])
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
