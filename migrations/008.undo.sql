ALTER FUNCTION hookpost.messages_after_delete() RESET ALL;
