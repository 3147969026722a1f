"""Trust: signed attestations binding a serving image to its certificate, and the deployment repo's trust.yaml."""
