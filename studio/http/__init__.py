"""HTTP plumbing shared by every route: request dependencies, the envelope, error handlers, the OpenAPI document, serving."""
