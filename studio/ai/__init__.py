"""The AI service: embeddings, vector index, control suggestions, quality scores, search."""
