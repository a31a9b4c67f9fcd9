SELECT prompt_hash, model, response_json, tokens_in, tokens_out, created_at FROM llm_copy_cache
