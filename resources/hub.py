"""Access to the Hugging Face Hub: the token for gated sources and for publishing."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from clip_assets.redaction import normalise_secret, protect_logs
from clip_assets.source.files import HubAccess


class HubResource(ConfigurableResource):
    """Hugging Face Hub settings.

    Reads: ``token`` (give it as ``EnvVar("HF_TOKEN")``, so it is never stored in run config
    or shown in the UI). Writes: nothing by itself. Guarantees: ``release_repo`` empty means
    releases are staged only, never uploaded; the token is stripped of surrounding whitespace
    (secret files end in a newline) and never logged.
    """

    token: str | None = Field(
        default=None, repr=False, description="Hub token, from EnvVar('HF_TOKEN')."
    )
    release_repo: str | None = Field(
        default=None, description="Dataset repo id to publish to, e.g. 'me/datacomp-small-clip'."
    )
    private: bool = Field(default=True, description="Create the release repo private.")
    endpoint: str | None = Field(default=None, description="Hub endpoint; None = the public Hub.")
    license: str = Field(default="cc-by-4.0", description="License written into the card.")

    @field_validator("token")
    @classmethod
    def _strip_token(cls, token: str | None) -> str | None:
        # Dagster validates again with the EnvVar's value at run time, so the value a run
        # sees is stripped too: a secret file's trailing newline never reaches a header.
        token = normalise_secret(token)
        protect_logs(token)
        return token

    def access(self) -> HubAccess:
        """Token and endpoint for reading sources from the Hub."""
        return HubAccess(token=self.token, endpoint=self.endpoint)

    @property
    def can_publish(self) -> bool:
        return bool(self.release_repo and self.token)
