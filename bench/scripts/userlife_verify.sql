SELECT userlife.verify_signature(:partner, :sig, :ts);
