"""Label Studio for any pipeline: a thin REST client, a local server in its own virtualenv, browser-playable clips."""
