"""The packaged-model contract: the manifest (serving.json), the input schema and the feature baseline."""
