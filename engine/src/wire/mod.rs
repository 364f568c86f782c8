//! The MongoDB wire protocol: message framing and the OP_MSG / OP_QUERY / OP_REPLY codecs.
