"""The eSMS.vn gateway: the typed client, its request and reply types, Zalo's error codes."""
