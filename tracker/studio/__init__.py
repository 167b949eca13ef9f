"""The studio: a local page over the engine to prompt with clicks and boxes, preview the mask at once,
track, review and correct (``tracker-studio``). frames.py serves frames, session.py holds the objects,
previews and Track jobs, server.py is the HTTP API and the page."""
