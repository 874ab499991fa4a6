// The signing key tests use: what only vigild writes (acknowledgements, ticks, findings) is signed with it.
#pragma once

#include <string>

#include "common/signer.h"
#include "services/escalation/pipeline/admission.h"

namespace vigil::testing {

inline const Signer& TestSigner() {
  static const Signer signer(std::string(kMinSigningKeyBytes, 'k'));
  return signer;
}

// Admission as vigild's, with the test key.
inline AdmissionPolicy TestAdmission() { return AdmissionPolicy{.signer = &TestSigner()}; }

}  // namespace vigil::testing
