// What services need to know about the request that asked them (for audit records and logs).
#pragma once

#include <string>

namespace parley::services {

struct RequestMeta {
  std::string request_id;
  std::string client_address;
};

}  // namespace parley::services
