"""GitOps: git and GitHub, the deployment repo read and written, deploy-pr, promote, rollback, status, retrain."""
