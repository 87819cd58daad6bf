"""Digital mailboxes (Kivra, Billo, Min Myndighetspost). Not built yet: see issue 5."""
