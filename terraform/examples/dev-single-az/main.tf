# A dev cluster in one availability zone: FoundationDB in double mode (3
# slots, 3 coordinators), one serving agent, one jobs agent, and a bucket that
# terraform destroy may empty.

module "network" {
  source = "../../modules/network"

  name                 = var.name
  availability_zones   = [var.availability_zone]
  nat_gateways         = "single"
  allowed_client_cidrs = var.allowed_client_cidrs
}

module "bucket" {
  source = "../../modules/bucket"

  bucket_name   = var.bucket_name
  force_destroy = true
}

module "fdb" {
  source = "../../modules/fdb"

  name              = var.name
  mode              = "double"
  subnets           = module.network.private_subnets
  security_group_id = module.network.fdb_security_group_id
  instance_type     = "m6i.large"
}

module "iam" {
  source = "../../modules/iam"

  name                       = var.name
  bucket_arn                 = module.bucket.bucket_arn
  prefix                     = "fjord"
  cluster_file_parameter_arn = module.fdb.cluster_file_parameter_arn
}

module "agents" {
  source = "../../modules/agents"

  name                        = var.name
  vpc_id                      = module.network.vpc_id
  subnets                     = module.network.private_subnets
  agents_security_group_id    = module.network.agents_security_group_id
  lb_security_group_id        = module.network.lb_security_group_id
  serve_instance_profile_name = module.iam.serve_instance_profile_name
  serve_role_name             = module.iam.serve_role_name
  jobs_instance_profile_name  = module.iam.jobs_instance_profile_name
  jobs_role_name              = module.iam.jobs_role_name
  bucket_name                 = module.bucket.bucket_name
  prefix                      = "fjord"
  cluster_file_parameter_name = module.fdb.cluster_file_parameter_name
  agent_image                 = var.agent_image
  agent_download_url          = var.agent_download_url
  agent_download_sha256       = var.agent_download_sha256
  serve_instance_type         = "m6i.large"
  jobs_instance_type          = "t3.medium"
  serve_min_per_az            = 1
  serve_desired_per_az        = 1
  serve_max_per_az            = 3
  jobs_count                  = 1
  deletion_protection         = false
}
