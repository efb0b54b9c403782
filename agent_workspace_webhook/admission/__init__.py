"""One admission: the AdmissionReview wire shapes (`review`) and the flow that answers it (`admit`),
shared by /mutate and the offline `review` command."""
