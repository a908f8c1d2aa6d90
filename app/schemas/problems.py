"""RFC 9457 problem details, the body of every error response."""

from pydantic import BaseModel, ConfigDict, Field


class ProblemFieldError(BaseModel):
    loc: list[str | int] = Field(description="Path to the offending value.")
    msg: str
    type: str


class Problem(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "type": "/problems/validation-error",
                "title": "Request validation failed",
                "status": 422,
                "detail": "1 invalid field",
                "errors": [
                    {
                        "loc": ["scores", 0, "value"],
                        "msg": "nps value must be between 0 and 10",
                        "type": "value_error",
                    }
                ],
            }
        }
    )

    type: str = Field(description="URI reference naming the problem type.")
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] | None = None
