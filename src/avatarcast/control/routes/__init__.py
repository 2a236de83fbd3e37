"""One router per resource. Each module exposes ``router``; see ``control.app.ROUTE_MODULES``."""

from avatarcast.control.problems import problem_responses

#: Problems any authenticated route may answer.
AUTH_PROBLEMS = problem_responses(400, 401, 403, 413, 422, 429)

__all__ = ["AUTH_PROBLEMS"]
