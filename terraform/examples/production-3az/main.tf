# A production cluster over three availability zones: FoundationDB in
# three_data_hall mode (9 slots, 3 per zone, 9 coordinators), serving agents in
# every zone behind the internal load balancer, two jobs agents, a NAT gateway
# per zone and the S3 gateway endpoint on every private route table.

module "network" {
  source = "../../modules/network"

  name                 = var.name
  vpc_cidr             = var.vpc_cidr
  availability_zones   = var.availability_zones
  nat_gateways         = "per_az"
  allowed_client_cidrs = var.allowed_client_cidrs
}

module "bucket" {
  source = "../../modules/bucket"

  bucket_name                  = var.bucket_name
  sse_algorithm                = "aws:kms"
  kms_key_arn                  = var.kms_key_arn
  express_availability_zone_id = var.express_availability_zone_id
}

module "fdb" {
  source = "../../modules/fdb"

  name              = var.name
  mode              = "three_data_hall"
  subnets           = module.network.private_subnets
  security_group_id = module.network.fdb_security_group_id
  instance_type     = "i4i.xlarge"
  ebs_kms_key_arn   = var.kms_key_arn
}

module "iam" {
  source = "../../modules/iam"

  name                       = var.name
  bucket_arn                 = module.bucket.bucket_arn
  prefix                     = "fjord"
  kms_key_arn                = var.kms_key_arn
  express_bucket_arn         = module.bucket.express_bucket_arn
  cluster_file_parameter_arn = module.fdb.cluster_file_parameter_arn
}

module "agents" {
  source = "../../modules/agents"

  name                                = var.name
  vpc_id                              = module.network.vpc_id
  subnets                             = module.network.private_subnets
  agents_security_group_id            = module.network.agents_security_group_id
  lb_security_group_id                = module.network.lb_security_group_id
  serve_instance_profile_name         = module.iam.serve_instance_profile_name
  serve_role_name                     = module.iam.serve_role_name
  jobs_instance_profile_name          = module.iam.jobs_instance_profile_name
  jobs_role_name                      = module.iam.jobs_role_name
  bucket_name                         = module.bucket.bucket_name
  prefix                              = "fjord"
  cluster_file_parameter_name         = module.fdb.cluster_file_parameter_name
  agent_image                         = var.agent_image
  agent_download_url                  = var.agent_download_url
  agent_download_sha256               = var.agent_download_sha256
  ebs_kms_key_arn                     = var.kms_key_arn
  serve_instance_type                 = "m6i.2xlarge"
  jobs_instance_type                  = "m6i.large"
  serve_min_per_az                    = 1
  serve_desired_per_az                = var.serve_desired_per_az
  serve_max_per_az                    = 6
  jobs_count                          = 2
  shutdown_timeout_ms                 = 20000
  lifecycle_heartbeat_timeout_seconds = 180
  deletion_protection                 = true
}
