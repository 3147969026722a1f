"""Certification: the gates measured on the packaged model, the certificate and the report."""
