"""Stage package: export the trained model for serving (ONNX when its predictions match) with mlci.

models/serving holds the served artifact and serving.json: the model's name and registry version,
its input schema, its drift baseline and the sha256 that the server reports and deploys check.
"""

from __future__ import annotations

import json
from pathlib import Path

from .params import Params
from .stage import StageError, run_stage
from .train import MODEL_DIR, MODEL_INFO

SERVING_DIR = Path("models/serving")


def package(params: Params) -> None:
    from mlci.errors import MlciError
    from mlci.package import package as mlci_package

    info = json.loads(MODEL_INFO.read_text())
    try:
        served = mlci_package(
            str(MODEL_DIR),
            SERVING_DIR,
            name=info["registered_model"],
            version=str(info["version"]),
            runtime=params.package.runtime,
        )
    except MlciError as error:
        raise StageError(str(error)) from error
    print(f"package: {served.name} version {served.version} served by {served.runtime} (sha256 {served.sha256[:12]})")


def main() -> None:
    run_stage("package", package)


if __name__ == "__main__":
    main()
