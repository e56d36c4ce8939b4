"""The HTTP kit every room's endpoints share: the worker's state, cursor paging, problem+json documents and the
lean ASGI answers of the hot paths. It sits below the rooms (it imports none of them); `api/` composes the app."""
