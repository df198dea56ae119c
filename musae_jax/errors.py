"""The user-error family of both packages (defined in data_pipeline/errors.py, the lower layer):
musae_jax code raises and catches it by this name."""

from data_pipeline.errors import USER_ERROR_EXIT_CODE, UserError

__all__ = ["USER_ERROR_EXIT_CODE", "UserError"]
