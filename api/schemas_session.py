"""Bodies of the browser session routes (``/session``): sign in with a key, read, sign out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SessionCreate(BaseModel):
    """Sign a browser in with an API key; the answer sets the session cookie."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"key": "cur_..."}]})

    key: str = Field(min_length=1, max_length=200, description="An API key from `curator keys create`.")


class SessionPublic(BaseModel):
    """A signed-in browser session: who it acts for, its CSRF token and when it ends."""

    key_id: int
    key_prefix: str = Field(description="The first characters of the key, to tell keys apart.")
    role: str
    project_id: int | None = Field(description="The key's project; `null` for a key valid on every project.")
    csrf_token: str = Field(
        description="Send it as `X-CSRF-Token` on every POST, PUT, PATCH or DELETE made with the cookie."
    )
    expires_at: float = Field(description="Unix seconds at which the session ends.")
