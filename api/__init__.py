"""The HTTP service: a thin FastAPI layer over :mod:`recommender`.

``create_app`` (in :mod:`api.app`) is the only entry point; routers in
:mod:`api.routers` call the library, and :mod:`api.errors` maps its errors to
status codes.
"""
