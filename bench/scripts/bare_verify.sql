SELECT bool_or(encode(hmac(convert_to(:ts::text || :partner::text || 'sid_request', 'UTF8'), convert_to(k.secret, 'UTF8'), 'sha256'), 'base64') = :sig::text)
  FROM userlife.partner_keys k
 WHERE k.partner = :partner::text AND k.environment = 'production' AND (k.expires_at IS NULL OR k.expires_at > now());
