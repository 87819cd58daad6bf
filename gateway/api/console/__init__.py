"""The staff and operator console under ``/console`` (issue 19; ``docs/console.md``).

``app`` builds the pages, ``oidc`` signs staff in, ``web`` holds the session, CSRF and audit
plumbing, ``settings`` the ``GATEWAY_CONSOLE_*`` and ``GATEWAY_OIDC_*`` settings. Templates and
the style sheet live beside them and ship in the wheel.
"""
