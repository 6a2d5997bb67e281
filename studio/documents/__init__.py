"""The document service: object storage, streaming upload, type detection, text extraction."""
